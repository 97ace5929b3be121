import type { Effects } from '../faults.js';
import { ShiftClock } from '../schedule.js';
import type { MachineKind } from '../types.js';
import { clamp, lagAlpha, MachineModel, type ChannelDef, type MachineOptions, type StepEnv } from './base.js';

/** Channels of a CNC milling machine's spindle, in output order. */
export const CNC_CHANNELS: readonly ChannelDef[] = [
  { name: 'spindle_speed_rpm', unit: 'rpm', description: 'Spindle speed measured at the spindle encoder.', decimals: 0, healthy: [0, 15000], noiseAbs: 0, noiseRel: 0.001, floor: 0 },
  { name: 'spindle_load_pct', unit: '%', description: 'Spindle drive torque as % of rated (the CNC load meter).', decimals: 0, healthy: [0, 170], noiseAbs: 0.3, noiseRel: 0.02, floor: 0 },
  { name: 'motor_current_a', unit: 'A', description: 'Spindle motor RMS phase current.', decimals: 1, healthy: [0, 55], noiseAbs: 0.05, noiseRel: 0.01, floor: 0 },
  { name: 'bearing_temp_c', unit: '°C', description: 'Front spindle bearing housing temperature.', decimals: 1, healthy: [5, 60], noiseAbs: 0.08, noiseRel: 0, floor: -40 },
  { name: 'vibration_rms_mm_s', unit: 'mm/s', description: 'Spindle housing vibration velocity, RMS 10-1000 Hz (ISO 10816 style).', decimals: 2, healthy: [0, 4], noiseAbs: 0.01, noiseRel: 0.04, floor: 0 },
  { name: 'vibration_kurtosis', unit: '1', description: 'Kurtosis of the vibration signal (3 = Gaussian; impacts raise it).', decimals: 2, healthy: [2.2, 4.3], noiseAbs: 0.12, noiseRel: 0, floor: 1 },
  { name: 'coolant_flow_l_min', unit: 'l/min', description: 'Flood coolant flow.', decimals: 1, healthy: [0, 30], noiseAbs: 0.05, noiseRel: 0.015, floor: 0 },
];

type Phase = 'off' | 'setup' | 'cutting' | 'aircut' | 'toolchange';
const MIN = 60_000;

/**
 * CNC milling spindle. Jobs (programme runs) of minutes to an hour with their own spindle speed and
 * cutting load; within a job, cutting segments alternate with air cuts and tool changes (spindle stop);
 * between jobs, setup with the spindle stopped. Current = magnetising + friction(speed) + torque(load)
 * + acceleration torque while ramping. Bearing temperature is a first-order lag (tau 12-18 min) towards
 * ambient + speed/load heating. Vibration grows with speed squared and with cutting load.
 */
export class CncSpindle extends MachineModel {
  readonly kind: MachineKind = 'cnc';
  readonly channels = CNC_CHANNELS;
  private readonly clock: ShiftClock;
  private readonly nMax: number;
  private readonly iRated: number;
  private readonly accelRpmS: number;
  private readonly vibBase: number;
  private readonly vibCut: number;
  private readonly riseC: number;
  private readonly tauMs: number;
  private readonly tempOffset: number;
  private readonly kurtBase: number;
  private readonly coolantNom: number;

  private phase: Phase = 'off';
  private phaseEnd = 0;
  private jobEnd = 0;
  private jobLoad = 0;
  private segLoad = 0;
  private speedSet = 0;
  private n = 0;
  private load = 0;
  private engage = 0;
  private temp = Number.NaN;
  private coolant = 0;

  constructor(opts: MachineOptions) {
    super(opts, 'two-shift');
    const p = this.prm;
    this.clock = new ShiftClock(this.schedule, this.jitterKey);
    this.nMax = [8000, 10000, 12000][p.int(0, 2)] as number;
    this.iRated = p.clampedNormal(28, 2.5, 22, 34);
    this.accelRpmS = p.uniform(3000, 5000);
    this.vibBase = p.clampedNormal(1.0, 0.2, 0.6, 1.4);
    this.vibCut = p.clampedNormal(0.8, 0.15, 0.5, 1.1);
    this.riseC = p.clampedNormal(15, 2, 11, 19);
    this.tauMs = p.uniform(12, 18) * MIN;
    this.tempOffset = p.clampedNormal(0, 0.8, -1.5, 1.5);
    this.kurtBase = p.clampedNormal(3.0, 0.08, 2.8, 3.2);
    this.coolantNom = p.clampedNormal(20, 1.5, 16, 24);
    this.init();
  }

  private nextPhase(t: number): void {
    const r = this.ops;
    switch (this.phase) {
      case 'off':
      case 'setup': {
        // new job (programme)
        this.jobEnd = t + clamp(r.lognormal(15 * MIN, 0.6), 3 * MIN, 90 * MIN);
        this.speedSet = Math.round((this.nMax * r.uniform(0.2, 1.0)) / 100) * 100;
        this.jobLoad = r.uniform(0.2, 0.8);
        this.startCut(t);
        break;
      }
      case 'cutting':
        if (t >= this.jobEnd) {
          this.phase = 'setup';
          // one setup in ten is long: waiting for material, first-article inspection
          this.phaseEnd = t + (r.chance(0.1) ? r.uniform(15, 45) : r.uniform(2, 15)) * MIN;
        } else if (r.chance(0.2)) {
          this.phase = 'toolchange';
          this.phaseEnd = t + r.uniform(6000, 12000);
          this.speedSet = Math.round(clamp(this.speedSet * r.uniform(0.7, 1.3), 0.15 * this.nMax, this.nMax) / 100) * 100;
        } else {
          this.phase = 'aircut';
          this.phaseEnd = t + r.uniform(3000, 15000);
        }
        break;
      case 'aircut':
      case 'toolchange':
        this.startCut(t);
        break;
    }
  }

  private startCut(t: number): void {
    this.phase = 'cutting';
    this.phaseEnd = t + this.ops.uniform(20_000, 150_000);
    this.segLoad = this.jobLoad * this.ops.uniform(0.8, 1.15);
  }

  protected simulate(ts: number, dtMs: number, env: StepEnv, fx: Effects, out: Float64Array): void {
    const on = !fx.failed && this.clock.isOn(ts, env.utcOffsetMinutes);
    if (!on) {
      this.phase = 'off';
    } else {
      if (this.phase === 'off') {
        this.phase = 'setup';
        this.phaseEnd = ts + this.ops.uniform(1, 8) * MIN; // warm-up, first setup of the shift
      }
      while (ts >= this.phaseEnd) this.nextPhase(this.phaseEnd);
    }
    const spinning = this.phase === 'cutting' || this.phase === 'aircut';
    const target = spinning ? this.speedSet : 0;
    const maxDelta = (this.accelRpmS * dtMs) / 1000;
    let accel = false;
    if (Math.abs(target - this.n) <= maxDelta) this.n = target;
    else {
      this.n += target > this.n ? maxDelta : -maxDelta;
      accel = true;
    }
    // engagement varies within a cut (AR(1), ~10 s memory)
    const aE = lagAlpha(dtMs, 10_000);
    this.engage += -this.engage * aE + Math.sqrt(aE * (2 - aE)) * this.ops.normal();
    const loadTarget = this.phase === 'cutting' ? clamp(this.segLoad * (1 + 0.08 * this.engage), 0, 1.2) : this.phase === 'aircut' ? 0.02 : 0;
    this.load += (loadTarget - this.load) * lagAlpha(dtMs, 1500);
    const sf = this.n / this.nMax;
    const running = this.n > 0;

    // belt slip: the spindle lags the motor under load and less torque gets through
    const slip = fx.slip > 0 && running ? clamp(fx.slip * (0.3 + this.load) * (1 + 0.3 * this.fxRng.normal()), 0, 0.45) : 0;
    const loadSeen = this.load * (1 - 1.2 * slip);
    let current = 0;
    if (running) {
      current = this.iRated * (0.12 + 0.12 * Math.pow(sf, 1.5) + 0.76 * loadSeen) * fx.currentGain;
      if (accel) current += 0.5 * this.iRated;
    }
    const loadPct = running ? (100 * (current / this.iRated - 0.12)) / 0.88 : 0;

    const amb = env.ambientC + this.tempOffset;
    if (Number.isNaN(this.temp)) this.temp = amb;
    const tTarget = amb + this.riseC * Math.pow(sf, 1.3) + 5 * this.load + fx.heat * sf;
    this.temp += (tTarget - this.temp) * lagAlpha(dtMs, this.tauMs);

    let vib = 0.05; // floor: neighbouring machines, fans
    let kurt = this.kurtBase;
    if (running) {
      vib += ((0.15 + this.vibBase * sf * sf + this.vibCut * this.load * Math.sqrt(sf)) * fx.vibGain * (1 + 2 * slip) + fx.vibAdd * sf * sf);
      if (accel) vib += 0.3;
      kurt += 0.5 * this.load + fx.kurtAdd * Math.min(1, 3 * sf);
    }
    const coolTarget = this.phase === 'off' || this.phase === 'setup' ? 0 : this.coolantNom * (1 - 0.75 * fx.clog);
    this.coolant += (coolTarget - this.coolant) * lagAlpha(dtMs, 3000);

    out[0] = this.n * (1 - slip);
    out[1] = loadPct;
    out[2] = current;
    out[3] = this.temp;
    out[4] = vib;
    out[5] = kurt;
    out[6] = this.coolant;
  }
}
