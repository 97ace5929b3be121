import type { FaultCourse, FaultClock, WorkPattern } from '../course.js';
import { applyFault, FAULTS, neutralEffects, resetEffects, type Effects, type FaultType } from '../faults.js';
import { hashSeed, Rng } from '../prng.js';
import type { MachineKind, MetricSpec, ScheduleName, SimReading } from '../types.js';

/** A channel definition: the public MetricSpec plus how the sensor measures it. */
export interface ChannelDef extends MetricSpec {
  /** Gaussian sensor noise: absolute sd plus sd relative to the value. */
  noiseAbs: number;
  noiseRel: number;
  /** Physical floor the sensor cannot read below (e.g. 0 for a flow). */
  floor: number;
}

/** A fault scheduled on one machine (absolute times, epoch ms). */
export interface FaultSchedule {
  machine: string;
  fault: FaultType;
  /** When the fault starts to develop. */
  onsetTs: number;
  /** When it reaches failure: mechanical/process faults trip the machine here. */
  failureTs: number;
  /**
   * What the fault's progress follows between onset and failure: the machine's running time
   * (`operating`: it stands still while the shift has the machine stopped) or the calendar.
   */
  clock: FaultClock;
  /** Sensor faults only: the channel hit (default: see DEFAULT_SENSOR_CHANNEL). */
  channel?: string;
  /** Optional repair: from this time the machine is healthy again and restarts with its schedule. */
  repairTs?: number;
}

/** Per-step inputs shared by the whole fleet. */
export interface StepEnv {
  ambientC: number;
  utcOffsetMinutes: number;
}

export interface MachineOptions {
  id: string;
  seed: number;
  schedule?: ScheduleName;
}

interface MechFaultState {
  sched: FaultSchedule;
  course: FaultCourse;
}

interface SensorFaultState {
  sched: FaultSchedule;
  course: FaultCourse;
  index: number;
  rng: Rng;
  stuckValue: number | undefined;
}

const SENSOR_SPIKE_PERIOD_START_MS = 3_600_000;
const SENSOR_SPIKE_PERIOD_END_MS = 60_000;

/** First-order lag factor for a step of dt with time constant tau (exact discretisation). */
export function lagAlpha(dtMs: number, tauMs: number): number {
  return 1 - Math.exp(-dtMs / tauMs);
}

export function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/**
 * Common machinery of every machine kind: seeded random streams, fault bookkeeping, and the sensor
 * stage (noise, sensor faults, quantisation). Subclasses implement the physics in `simulate`.
 *
 * Random streams are separate so that adding a fault does not change the operating sequence
 * (jobs, shifts) or the sensor noise of the same machine: a faulted run and its healthy twin can be
 * compared sample by sample until the trip.
 */
export abstract class MachineModel {
  readonly id: string;
  abstract readonly kind: MachineKind;
  abstract readonly channels: readonly ChannelDef[];
  protected readonly schedule: ScheduleName;
  /** Machine-to-machine variation; used only in constructors. */
  protected readonly prm: Rng;
  /** Operations: jobs, demand, stops. */
  protected readonly ops: Rng;
  /** Fault fluctuations (cavitation bursts, slip chatter): kept apart from `ops`. */
  protected readonly fxRng: Rng;
  private readonly noise: Rng;
  protected readonly jitterKey: number;
  private readonly mechFaults: MechFaultState[] = [];
  private readonly sensorFaults: SensorFaultState[] = [];
  protected readonly fx: Effects = neutralEffects();
  private values!: Float64Array;
  private decimalsPow!: Float64Array;

  constructor(opts: MachineOptions, defaultSchedule: ScheduleName) {
    this.id = opts.id;
    this.schedule = opts.schedule ?? defaultSchedule;
    this.prm = new Rng(hashSeed(opts.seed, 'params', opts.id));
    this.ops = new Rng(hashSeed(opts.seed, 'ops', opts.id));
    this.noise = new Rng(hashSeed(opts.seed, 'noise', opts.id));
    this.fxRng = new Rng(hashSeed(opts.seed, 'fx', opts.id));
    this.jitterKey = hashSeed(opts.seed, 'jitter', opts.id);
  }

  /** Called by the fleet once channels are known (subclass constructors have run). */
  init(): void {
    this.values = new Float64Array(this.channels.length);
    this.decimalsPow = Float64Array.from(this.channels, (c) => Math.pow(10, c.decimals));
  }

  /** The machine's shift pattern at a site's UTC offset (what an `operating` fault clock follows). */
  workPattern(utcOffsetMinutes: number): WorkPattern {
    return { schedule: this.schedule, jitterKey: this.jitterKey, utcOffsetMinutes };
  }

  /** Attach a fault (validated by the fleet); `course` gives its progress on its clock. */
  addFault(f: FaultSchedule, seed: number, course: FaultCourse): void {
    if (FAULTS[f.fault].category === 'sensor') {
      const index = this.channels.findIndex((c) => c.name === f.channel);
      this.sensorFaults.push({ sched: f, course, index, rng: new Rng(hashSeed(seed, 'sensor', this.id, f.fault, f.onsetTs)), stuckValue: undefined });
    } else {
      this.mechFaults.push({ sched: f, course });
    }
  }

  /** Advance the physics to `ts` (end of a step of dtMs) and return the sensor reading. */
  step(ts: number, dtMs: number, env: StepEnv): SimReading {
    const fx = this.fx;
    resetEffects(fx);
    for (const { sched: f, course } of this.mechFaults) {
      if (ts < f.onsetTs) continue;
      if (f.repairTs !== undefined && ts >= f.repairTs) continue;
      const u = f.failureTs <= f.onsetTs ? 1 : course.progress(ts);
      applyFault(fx, f.fault, u);
      if (ts >= f.failureTs) fx.failed = true;
    }
    const v = this.values;
    this.simulate(ts, dtMs, env, fx, v);
    return { machine: this.id, ts, metrics: this.measure(ts, dtMs, v) };
  }

  private measure(ts: number, dtMs: number, v: Float64Array): Record<string, number> {
    const ch = this.channels;
    const noise = this.noise;
    for (let i = 0; i < ch.length; i++) {
      const c = ch[i] as ChannelDef;
      const x = v[i] as number;
      const n = noise.normal(); // always drawn, so the noise stream does not depend on the state
      // sensors with a zero floor (speed, flow, current, load) have a low-cut: exactly 0 at rest
      v[i] = x === 0 && c.floor === 0 ? 0 : x + (c.noiseAbs + c.noiseRel * Math.abs(x)) * n;
    }
    let drop = -1;
    let drop2 = -1;
    for (const s of this.sensorFaults) {
      const f = s.sched;
      if (ts < f.onsetTs || s.index < 0) continue;
      if (f.repairTs !== undefined && ts >= f.repairTs) {
        s.stuckValue = undefined;
        continue;
      }
      const u = f.failureTs <= f.onsetTs ? 1 : s.course.progress(ts);
      const c = ch[s.index] as ChannelDef;
      const range = c.healthy[1] - c.healthy[0];
      switch (f.fault) {
        case 'sensor-drift':
          v[s.index] = (v[s.index] as number) + 0.2 * range * u;
          break;
        case 'sensor-spikes': {
          const period = SENSOR_SPIKE_PERIOD_START_MS * Math.pow(SENSOR_SPIKE_PERIOD_END_MS / SENSOR_SPIKE_PERIOD_START_MS, u);
          if (s.rng.next() < dtMs / period) {
            const sign = s.rng.next() < 0.8 ? 1 : -1;
            v[s.index] = (v[s.index] as number) + sign * range * s.rng.uniform(0.3, 0.8);
          }
          break;
        }
        case 'sensor-stuck':
          if (s.stuckValue === undefined) s.stuckValue = v[s.index] as number;
          v[s.index] = s.stuckValue;
          break;
        case 'sensor-dropout':
          if (s.rng.next() < 0.02 + 0.98 * u * u) {
            if (drop < 0) drop = s.index;
            else drop2 = s.index;
          }
          break;
        default:
          break;
      }
    }
    const out: Record<string, number> = {};
    const pow = this.decimalsPow;
    for (let i = 0; i < ch.length; i++) {
      if (i === drop || i === drop2) continue;
      const c = ch[i] as ChannelDef;
      let x = v[i] as number;
      if (x < c.floor) x = c.floor;
      const p = pow[i] as number;
      x = Math.round(x * p) / p;
      out[c.name] = x === 0 ? 0 : x; // no -0 in JSON round trips
    }
    return out;
  }

  /** Physics: write each channel's true value (before the sensor) into `out`, in `channels` order. */
  protected abstract simulate(ts: number, dtMs: number, env: StepEnv, fx: Effects, out: Float64Array): void;
}
