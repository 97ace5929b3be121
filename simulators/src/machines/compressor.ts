import type { Effects } from '../faults.js';
import { ShiftClock } from '../schedule.js';
import type { MachineKind } from '../types.js';
import { clamp, lagAlpha, MachineModel, type ChannelDef, type MachineOptions, type StepEnv } from './base.js';

/** Channels of an oil-injected screw air compressor, in output order. */
export const COMPRESSOR_CHANNELS: readonly ChannelDef[] = [
  { name: 'discharge_pressure_bar', unit: 'bar(g)', description: 'Receiver/discharge pressure (gauge).', decimals: 2, healthy: [0, 8.2], noiseAbs: 0.01, noiseRel: 0.002, floor: 0 },
  { name: 'motor_current_a', unit: 'A', description: 'Main motor RMS phase current (star-delta start).', decimals: 1, healthy: [0, 80], noiseAbs: 0.05, noiseRel: 0.01, floor: 0 },
  { name: 'oil_temp_c', unit: '°C', description: 'Airend discharge oil temperature.', decimals: 1, healthy: [5, 95], noiseAbs: 0.1, noiseRel: 0, floor: -40 },
  { name: 'vibration_rms_mm_s', unit: 'mm/s', description: 'Airend/motor vibration velocity, RMS.', decimals: 2, healthy: [0, 5.5], noiseAbs: 0.01, noiseRel: 0.04, floor: 0 },
  { name: 'vibration_kurtosis', unit: '1', description: 'Kurtosis of the vibration signal (3 = Gaussian).', decimals: 2, healthy: [2.2, 4.0], noiseAbs: 0.12, noiseRel: 0, floor: 1 },
  { name: 'duty_pct', unit: '%', description: 'Share of the last ~10 minutes spent loaded (controller value).', decimals: 1, healthy: [0, 100], noiseAbs: 0, noiseRel: 0, floor: 0 },
];

type State = 'off' | 'starting' | 'loaded' | 'unloaded';
const MIN = 60_000;

/**
 * Fixed-speed screw compressor with load/unload control on a receiver. Pressure integrates
 * (delivered - demanded air) / receiver volume, so it saw-tooths between the load and unload set
 * points; after a run-on time unloaded the motor stops and restarts (star-delta inrush) when pressure
 * falls. Demand = leaks (always) + production air during shifts. Some units are left on overnight for
 * the leaks. Oil temperature lags (tau ~5 min running, ~40 min cooling) towards a thermostat level
 * that rises with load and ambient.
 */
export class ScrewCompressor extends MachineModel {
  readonly kind: MachineKind = 'compressor';
  readonly channels = COMPRESSOR_CHANNELS;
  private readonly clock: ShiftClock;
  private readonly fad: number; // free air delivery, m³/min
  private readonly volume: number; // receiver, m³
  private readonly pLoad: number;
  private readonly pUnload: number;
  private readonly iFull: number;
  private readonly runOnMs: number;
  private readonly leak: number; // m³/min
  private readonly leftOn: boolean;
  private readonly vibLoaded: number;
  private readonly kurtBase: number;
  private readonly oilBase: number;

  private state: State = 'off';
  private stateSince = 0;
  private p = 0;
  private demandDev = 0;
  private demandLevel = 0.45;
  private nextDemandChange = 0;
  private duty = 0;
  private loadedFast = 0;
  private oil = Number.NaN;

  constructor(opts: MachineOptions) {
    super(opts, 'two-shift');
    const r = this.prm;
    this.clock = new ShiftClock(this.schedule, this.jitterKey);
    this.fad = r.uniform(2.0, 3.0);
    this.volume = r.uniform(0.5, 1.0);
    this.pLoad = r.uniform(6.3, 6.7);
    this.pUnload = this.pLoad + r.uniform(0.8, 1.1);
    this.iFull = (this.fad / 2.5) * r.clampedNormal(28, 1.5, 25, 31);
    this.runOnMs = r.uniform(3, 6) * MIN;
    this.leak = this.fad * r.uniform(0.08, 0.2);
    this.leftOn = r.chance(0.35);
    this.vibLoaded = r.clampedNormal(2.0, 0.3, 1.4, 2.6);
    this.kurtBase = r.clampedNormal(3.0, 0.08, 2.8, 3.2);
    this.oilBase = r.uniform(64, 70);
    this.init();
  }

  protected simulate(ts: number, dtMs: number, env: StepEnv, fx: Effects, out: Float64Array): void {
    const shift = this.clock.isOn(ts, env.utcOffsetMinutes);
    const enabled = !fx.failed && (shift || this.leftOn);
    // production demand: a level that changes every 5-30 min plus fast fluctuation (tools, blow guns)
    if (ts >= this.nextDemandChange) {
      this.demandLevel = this.ops.uniform(0.2, 0.55);
      this.nextDemandChange = ts + this.ops.uniform(5, 30) * MIN;
    }
    const aD = lagAlpha(dtMs, 20_000);
    this.demandDev += -this.demandDev * aD + Math.sqrt(aD * (2 - aD)) * this.ops.normal();
    const demand = this.leak + (shift ? this.fad * clamp(this.demandLevel + 0.08 * this.demandDev, 0.05, 0.7) : 0);
    // intake filter restriction: less air per revolution
    const fadNow = this.fad * (1 - 0.45 * fx.clog);

    // integrate pressure and the load/unload controller in sub-steps of <= 1 s so that long sample
    // intervals still see a realistic cycle (the sample is the instant value at the end of the step)
    const nSub = Math.max(1, Math.ceil(dtMs / 1000));
    const h = dtMs / nSub;
    const aDuty = lagAlpha(h, 10 * MIN);
    const aFast = lagAlpha(h, 90_000);
    let t = ts - dtMs;
    for (let i = 0; i < nSub; i++) {
      t += h;
      if (!enabled) this.setState('off', t);
      switch (this.state) {
        case 'off':
          if (enabled && this.p < this.pLoad) this.setState('starting', t);
          break;
        case 'starting':
          if (t - this.stateSince >= 6000) this.setState('loaded', t);
          break;
        case 'loaded':
          if (this.p >= this.pUnload) this.setState('unloaded', t);
          break;
        case 'unloaded':
          if (this.p <= this.pLoad) this.setState('loaded', t);
          else if (t - this.stateSince >= this.runOnMs) this.setState('off', t);
          break;
      }
      const qIn = this.state === 'loaded' ? fadNow : 0;
      // receiver blow-off keeps a stopped unit from holding pressure forever (drain valve, leaks)
      this.p = Math.max(0, this.p + ((qIn - demand) * h) / MIN / this.volume);
      const isLoaded = this.state === 'loaded' ? 1 : 0;
      this.duty += (isLoaded - this.duty) * aDuty;
      this.loadedFast += (isLoaded - this.loadedFast) * aFast;
    }

    let current = 0;
    const running = this.state !== 'off';
    switch (this.state) {
      case 'starting':
        current = this.iFull * (ts - this.stateSince < 3000 ? 2.4 : 1.9);
        break;
      case 'loaded':
        // shaft power rises with discharge pressure (about half at atmospheric)
        current = this.iFull * (0.55 + (0.45 * this.p) / this.pUnload) * (1 - 0.12 * fx.clog) * fx.currentGain;
        break;
      case 'unloaded':
        current = this.iFull * 0.38 * fx.currentGain;
        break;
      default:
        break;
    }

    if (Number.isNaN(this.oil)) this.oil = env.ambientC;
    const oilTarget = running
      ? this.oilBase + 0.5 * (env.ambientC - 20) + 16 * this.loadedFast + 7 * fx.clog + fx.heat
      : env.ambientC + 1;
    this.oil += (oilTarget - this.oil) * lagAlpha(dtMs, running ? 5 * MIN : 40 * MIN);

    let vib = 0.05;
    let kurt = this.kurtBase;
    if (running) {
      const base = this.state === 'starting' ? 3.2 : this.state === 'loaded' ? this.vibLoaded : 0.75 * this.vibLoaded;
      vib += base * fx.vibGain + fx.vibAdd;
      kurt += fx.kurtAdd;
    }

    out[0] = this.p;
    out[1] = current;
    out[2] = this.oil;
    out[3] = vib;
    out[4] = kurt;
    out[5] = 100 * this.duty;
  }

  private setState(s: State, t: number): void {
    if (this.state === s) return;
    this.state = s;
    this.stateSince = t;
  }
}
