import type { Effects } from '../faults.js';
import { ShiftClock } from '../schedule.js';
import type { MachineKind } from '../types.js';
import { clamp, lagAlpha, MachineModel, type ChannelDef, type MachineOptions, type StepEnv } from './base.js';

/** Channels of a belt conveyor driven by a VFD-fed gear motor, in output order. */
export const CONVEYOR_CHANNELS: readonly ChannelDef[] = [
  { name: 'motor_speed_rpm', unit: 'rpm', description: 'Motor shaft speed (drive estimate).', decimals: 0, healthy: [0, 1520], noiseAbs: 0.5, noiseRel: 0.001, floor: 0 },
  { name: 'belt_speed_m_min', unit: 'm/min', description: 'Belt speed from a tail-pulley encoder.', decimals: 2, healthy: [0, 50], noiseAbs: 0.02, noiseRel: 0.003, floor: 0 },
  { name: 'motor_current_a', unit: 'A', description: 'Motor RMS phase current (drive value).', decimals: 2, healthy: [0, 5.5], noiseAbs: 0.01, noiseRel: 0.01, floor: 0 },
  { name: 'gearbox_temp_c', unit: '°C', description: 'Gearbox oil sump temperature.', decimals: 1, healthy: [5, 60], noiseAbs: 0.08, noiseRel: 0, floor: -40 },
  { name: 'vibration_rms_mm_s', unit: 'mm/s', description: 'Gearbox housing vibration velocity, RMS.', decimals: 2, healthy: [0, 3.5], noiseAbs: 0.01, noiseRel: 0.04, floor: 0 },
  { name: 'vibration_kurtosis', unit: '1', description: 'Kurtosis of the vibration signal (3 = Gaussian; gear mesh raises it a little).', decimals: 2, healthy: [2.2, 4.0], noiseAbs: 0.12, noiseRel: 0, floor: 1 },
];

const MIN = 60_000;

/**
 * Belt conveyor: a 4-pole gear motor on a frequency converter. Production runs (20-120 min) have
 * their own belt speed and part load; load fluctuates as parts arrive; short stops (accumulation,
 * jams) come at random. Torque = belt friction + part load (+ acceleration while ramping); VFD current
 * = magnetising + torque part; motor slip grows with torque. Gearbox temperature lags power (tau 30-45
 * min). Belt speed is measured at the tail pulley, so belt slip shows as belt speed below motor speed.
 */
export class GearConveyor extends MachineModel {
  readonly kind: MachineKind = 'conveyor';
  readonly channels = CONVEYOR_CHANNELS;
  private readonly clock: ShiftClock;
  private readonly ratio: number;
  private readonly drumD: number;
  private readonly iRated: number;
  private readonly vibBase: number;
  private readonly kurtBase: number;
  private readonly tauMs: number;
  private readonly tempOffset: number;

  private freq = 0;
  private freqSet = 45;
  private runEnd = 0;
  private runLoad = 0.5;
  private load = 0;
  private loadDev = 0;
  private stopUntil = 0;
  private temp = Number.NaN;

  constructor(opts: MachineOptions) {
    super(opts, 'two-shift');
    const r = this.prm;
    this.clock = new ShiftClock(this.schedule, this.jitterKey);
    this.ratio = r.uniform(22, 30);
    this.drumD = r.uniform(0.16, 0.22);
    this.iRated = r.uniform(2.2, 3.2);
    this.vibBase = r.clampedNormal(0.9, 0.15, 0.6, 1.2);
    this.kurtBase = r.clampedNormal(3.1, 0.08, 2.9, 3.3);
    this.tauMs = r.uniform(30, 45) * MIN;
    this.tempOffset = r.clampedNormal(0, 0.8, -1.5, 1.5);
    this.init();
  }

  protected simulate(ts: number, dtMs: number, env: StepEnv, fx: Effects, out: Float64Array): void {
    const on = !fx.failed && this.clock.isOn(ts, env.utcOffsetMinutes);
    if (ts >= this.runEnd) {
      this.freqSet = Math.round(this.ops.uniform(35, 50) * 2) / 2;
      this.runLoad = this.ops.uniform(0.3, 0.9);
      this.runEnd = ts + this.ops.uniform(20, 120) * MIN;
    }
    if (on && this.freq > 0 && ts >= this.stopUntil && this.ops.chance(dtMs / (40 * MIN))) {
      this.stopUntil = ts + this.ops.uniform(10_000, 90_000);
    }
    const moving = on && ts >= this.stopUntil;
    const target = moving ? this.freqSet : 0;
    const maxDelta = (10 * dtMs) / 1000; // 10 Hz/s ramps
    let accel = false;
    if (Math.abs(target - this.freq) <= maxDelta) this.freq = target;
    else {
      this.freq += target > this.freq ? maxDelta : -maxDelta;
      accel = true;
    }
    const aL = lagAlpha(dtMs, 30_000);
    this.loadDev += -this.loadDev * aL + Math.sqrt(aL * (2 - aL)) * this.ops.normal();
    const loadTarget = on ? clamp(this.runLoad + 0.08 * this.loadDev, 0, 1.2) : 0;
    this.load += (loadTarget - this.load) * lagAlpha(dtMs, 5000);

    const sf = this.freq / 50;
    const running = this.freq > 0;
    const slip = fx.slip > 0 && running ? clamp(fx.slip * (0.4 + this.load) * (1 + 0.3 * this.fxRng.normal()), 0, 0.45) : 0;
    const torque = (0.3 + 0.6 * this.load) * (1 - 1.2 * slip) + (accel ? 0.4 : 0);
    const rpm = running ? sf * 1500 * (1 - 0.033 * torque) : 0;
    const belt = ((rpm / this.ratio) * Math.PI * this.drumD) * (1 - slip);
    const current = running ? this.iRated * (0.4 + 0.6 * torque) * fx.currentGain : 0;

    const amb = env.ambientC + this.tempOffset;
    if (Number.isNaN(this.temp)) this.temp = amb;
    const tTarget = amb + 5 * sf + 20 * sf * torque + fx.heat * sf;
    this.temp += (tTarget - this.temp) * lagAlpha(dtMs, this.tauMs);

    let vib = 0.05;
    let kurt = this.kurtBase;
    if (running) {
      vib += (0.2 + this.vibBase * sf * sf + 0.35 * this.load * sf) * fx.vibGain * (1 + 1.5 * slip) + fx.vibAdd * sf * sf;
      if (accel) vib += 0.2;
      kurt += 0.2 * this.load + fx.kurtAdd * Math.min(1, 3 * sf);
    }

    out[0] = rpm;
    out[1] = belt;
    out[2] = current;
    out[3] = this.temp;
    out[4] = vib;
    out[5] = kurt;
  }
}
