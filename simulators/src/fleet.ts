import { NAME_PATTERN } from '../../gateway/src/contract/reading.js';
import { Ambient } from './ambient.js';
import { afterOperating, FAULT_CLOCKS, FaultCourse, type FaultClock, type WorkPattern } from './course.js';
import { SimError } from './errors.js';
import { DEFAULT_SENSOR_CHANNEL, FAULT_TYPES, FAULTS, isSensorFault, type FaultType } from './faults.js';
import type { FaultSchedule } from './machines/base.js';
import { channelsOf, createMachine } from './machines/index.js';
import type { MachineModel } from './machines/base.js';
import { hashSeed } from './prng.js';
import { ShiftClock } from './schedule.js';
import { MACHINE_KINDS, SCHEDULES, type MachineKind, type MetricSpec, type ScheduleName, type SimReading } from './types.js';

export type { FaultSchedule } from './machines/base.js';

/** One machine of a fleet. */
export interface MachineSpec {
  /** Machine id (the MQTT topic segment): letters, digits, `_`, `.`, `-`, at most 64. */
  id: string;
  kind: MachineKind;
  /** Work pattern; default per kind (cnc, compressor, conveyor: two-shift; pump: three-shift). */
  schedule?: ScheduleName;
}

/**
 * A fault to schedule. Give the onset either absolutely (`onsetTs`) or relative to the fleet start
 * (`onsetMs`), and the failure either absolutely (`failureTs`) or as time from onset (`durationMs`);
 * without either, the fault type's default duration applies. On the `operating` clock (the default for
 * mechanical and process faults) `durationMs` is running time: the failure comes after the machine has
 * run that long since onset, and the fault does not progress while the machine's shift has it stopped.
 */
export interface FaultRequest {
  machine: string;
  fault: FaultType;
  onsetTs?: number;
  onsetMs?: number;
  failureTs?: number;
  durationMs?: number;
  /** Sensor faults: the channel hit (default: DEFAULT_SENSOR_CHANNEL[kind][fault]). */
  channel?: string;
  /** Optional repair after failure: absolute, or `repairAfterMs` after failureTs. */
  repairTs?: number;
  repairAfterMs?: number;
  /** What the fault's progress follows (default: the fleet's `faultClock` for mechanical/process faults, calendar for sensor faults). */
  clock?: FaultClock;
}

/** Ground truth for one scheduled fault (one JSON line in a labels file). */
export interface FaultLabel {
  machine: string;
  kind: MachineKind;
  fault: FaultType;
  /** Epoch ms when the fault starts to develop. */
  onsetTs: number;
  /** Epoch ms of failure (mechanical/process faults: the machine trips here). */
  failureTs: number;
  /** Sensor faults: the channel hit. */
  channel?: string;
  repairTs?: number;
  /** Channels expected to move (from the fault catalogue, or the sensor fault's channel). */
  metrics: string[];
  /** What the fault's progress followed from onset to failure: the machine's running time, or the calendar. */
  clock: FaultClock;
  /** Running time between onset and failure on that clock, whole ms (on the calendar clock: failureTs - onsetTs). */
  courseMs: number;
}

export interface FleetOptions {
  /** A machine count (ids `cnc-01`, `pump-02`, ... by `mix`), or explicit machines. */
  machines: number | readonly MachineSpec[];
  /** Relative weights of kinds when `machines` is a count. Default cnc 5, compressor 2, pump 3, conveyor 2. */
  mix?: Partial<Record<MachineKind, number>>;
  /** PRNG seed (default 1). Same seed and options, same readings. */
  seed?: number;
  /** Simulated time of the first reading, epoch ms. */
  startTs: number;
  /** Simulated time between readings of a machine (default 1000 ms). */
  stepMs?: number;
  faults?: readonly FaultRequest[];
  /** Offset of the site's local time from UTC, minutes (shifts and the daily temperature cycle use local time). Default 0. */
  utcOffsetMinutes?: number;
  /** Schedule for machines that do not name one (overrides the per-kind default). */
  schedule?: ScheduleName;
  /**
   * Clock of mechanical and process faults (sensor faults always follow the calendar): `operating`
   * (default) = they progress only while the machine's shift runs it; `calendar` = all the time, as
   * the simulator did before 2026-12-02 (a fault could then reach failure during a weekend stop).
   */
  faultClock?: FaultClock;
  /** Mean shop temperature, °C (default 20). */
  ambientBaseC?: number;
  /**
   * Simulated time run before `startTs` without output, so machines start warm and mid-cycle rather
   * than all cold and stopped at startTs (default 3 h; 0 to start cold). Runs in steps of >= 10 s.
   */
  warmupMs?: number;
}

/** Public description of a fleet member. */
export interface MachineInfo {
  id: string;
  kind: MachineKind;
  channels: readonly MetricSpec[];
}

/** A running simulation. Not thread-safe; cheap to create. */
export interface Fleet {
  readonly seed: number;
  readonly startTs: number;
  readonly stepMs: number;
  readonly machines: readonly MachineInfo[];
  /** Resolved fault schedules (absolute times). */
  readonly faults: readonly FaultSchedule[];
  /** Ground-truth labels of all scheduled faults. */
  readonly labels: readonly FaultLabel[];
  /** Progress (0 at onset, 1 at failure, on the fault's clock) of the fault `labels[i]` at `ts`. */
  progress(i: number, ts: number): number;
  /** Simulated time of the next step's readings. */
  readonly nextTs: number;
  /** Shop ambient temperature at the last step, °C. */
  readonly ambientC: number;
  /** Advance one step: one reading per machine, in `machines` order, all with the same ts. */
  step(): SimReading[];
  /**
   * Readings from the current position, step by step (machines in order within a step), until
   * `untilTs` (exclusive) or `steps` steps. Without either it never ends.
   */
  readings(opts?: { untilTs?: number; steps?: number }): Generator<SimReading, void, undefined>;
}

/** Default kind weights for a machine count. */
export const DEFAULT_MIX: Readonly<Record<MachineKind, number>> = { cnc: 5, compressor: 2, pump: 3, conveyor: 2 };

/** Machine specs for `count` machines split by `mix` (largest remainder), ids `<kind>-NN`. */
export function defaultMachines(count: number, mix: Partial<Record<MachineKind, number>> = DEFAULT_MIX): MachineSpec[] {
  if (!Number.isInteger(count) || count < 0) throw new SimError('SIM_BAD_OPTION', `machines: ${count} is not a whole number >= 0`);
  const kinds = MACHINE_KINDS.filter((k) => (mix[k] ?? 0) > 0);
  for (const [k, w] of Object.entries(mix)) {
    if (!(MACHINE_KINDS as readonly string[]).includes(k)) throw new SimError('SIM_UNKNOWN_KIND', `mix: unknown machine kind "${k}" (known: ${MACHINE_KINDS.join(', ')})`);
    if (typeof w !== 'number' || !(w >= 0)) throw new SimError('SIM_BAD_OPTION', `mix.${k}: weight must be a number >= 0`);
  }
  if (kinds.length === 0) throw new SimError('SIM_BAD_OPTION', 'mix: at least one kind needs a weight > 0');
  const total = kinds.reduce((s, k) => s + (mix[k] ?? 0), 0);
  // every kind with weight gets one machine first (when there are enough), the rest by weight
  const base = count >= kinds.length ? 1 : 0;
  const rest = count - base * kinds.length;
  const exact = kinds.map((k) => (rest * (mix[k] ?? 0)) / total);
  const counts = exact.map((x) => Math.floor(x) + base);
  let left = count - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    counts[i] = (counts[i] as number) + 1;
    left--;
  }
  const specs: MachineSpec[] = [];
  kinds.forEach((kind, i) => {
    for (let n = 1; n <= (counts[i] as number); n++) specs.push({ id: `${kind}-${String(n).padStart(2, '0')}`, kind });
  });
  return specs;
}

/** The clock a fault follows unless its request names one: sensor faults the calendar, the rest `fleetClock`. */
export function defaultFaultClock(fault: FaultType, fleetClock: FaultClock = 'operating'): FaultClock {
  return isSensorFault(fault) ? 'calendar' : fleetClock;
}

/**
 * Resolve a fault request against a machine kind and start time into an absolute schedule, with
 * validation (applicable kind, known channel, onset before failure). Throws SimError. `work` is the
 * machine's shift pattern, needed for an `operating` clock (without it the fault follows the calendar).
 */
export function scheduleFault(req: FaultRequest, kind: MachineKind, startTs: number, work?: WorkPattern, fleetClock: FaultClock = 'operating'): FaultSchedule {
  const where = `fault ${req.machine}:${req.fault}`;
  if (!(FAULT_TYPES as readonly string[]).includes(req.fault)) {
    throw new SimError('SIM_UNKNOWN_FAULT', `${where}: unknown fault type (known: ${FAULT_TYPES.join(', ')})`);
  }
  const info = FAULTS[req.fault];
  if (!info.appliesTo.includes(kind)) {
    throw new SimError('SIM_FAULT_NOT_APPLICABLE', `${where}: does not apply to a ${kind} (applies to: ${info.appliesTo.join(', ')})`);
  }
  if (req.clock !== undefined && !FAULT_CLOCKS.includes(req.clock)) throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: clock "${String(req.clock)}" unknown (known: ${FAULT_CLOCKS.join(', ')})`);
  const clock: FaultClock = work ? (req.clock ?? defaultFaultClock(req.fault, fleetClock)) : 'calendar';
  const onsetTs = req.onsetTs ?? startTs + (req.onsetMs ?? 0);
  const durationMs = req.durationMs ?? info.defaultDurationMs;
  if (!Number.isFinite(onsetTs) || !Number.isFinite(req.failureTs ?? durationMs)) throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: onset and failure must be finite times`);
  if (req.failureTs === undefined && durationMs < 0) throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: duration to failure (${durationMs} ms) is negative`);
  // On the operating clock a duration is running time: the failure is where the machine has run that long.
  const failureTs = req.failureTs ?? (clock === 'operating' && work ? afterOperating(work, onsetTs, durationMs) : onsetTs + durationMs);
  if (failureTs < onsetTs) throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: failure (${new Date(failureTs).toISOString()}) is before onset (${new Date(onsetTs).toISOString()})`);
  const out: FaultSchedule = { machine: req.machine, fault: req.fault, onsetTs, failureTs, clock };
  if (isSensorFault(req.fault)) {
    const channel = req.channel ?? DEFAULT_SENSOR_CHANNEL[kind][req.fault];
    const names = channelsOf(kind).map((c) => c.name);
    if (!names.includes(channel)) throw new SimError('SIM_UNKNOWN_CHANNEL', `${where}: channel "${channel}" is not a ${kind} channel (${names.join(', ')})`);
    out.channel = channel;
  } else if (req.channel !== undefined) {
    throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: only sensor faults take a channel`);
  }
  const repairTs = req.repairTs ?? (req.repairAfterMs !== undefined ? failureTs + req.repairAfterMs : undefined);
  if (repairTs !== undefined) {
    if (repairTs < failureTs) throw new SimError('SIM_BAD_FAULT_SPEC', `${where}: repair is before failure`);
    out.repairTs = repairTs;
  }
  return out;
}

/** Ground-truth label of a resolved fault. */
export function labelOf(f: FaultSchedule, kind: MachineKind, courseMs = f.failureTs - f.onsetTs): FaultLabel {
  const label: FaultLabel = { machine: f.machine, kind, fault: f.fault, onsetTs: f.onsetTs, failureTs: f.failureTs, metrics: [], clock: f.clock, courseMs: Math.floor(courseMs) };
  if (f.channel !== undefined) {
    label.channel = f.channel;
    label.metrics = [f.channel];
  } else {
    label.metrics = Object.keys(FAULTS[f.fault].effects[kind] ?? {});
  }
  if (f.repairTs !== undefined) label.repairTs = f.repairTs;
  return label;
}

/** Labels as JSON lines (one object per line, trailing newline). */
export function labelsToJsonl(labels: readonly FaultLabel[]): string {
  return labels.map((l) => JSON.stringify(l)).join('\n') + (labels.length ? '\n' : '');
}

/**
 * Create a simulated fleet. Each machine draws its own parameters and random streams from
 * (seed, machine id), so a machine behaves the same whatever else is in the fleet.
 *
 * @example
 * const fleet = createFleet({ machines: 12, seed: 7, startTs: Date.parse('2025-03-03T00:00:00Z'),
 *   faults: [{ machine: 'cnc-03', fault: 'bearing-wear', onsetMs: 2 * 3600e3, durationMs: 48 * 3600e3 }] });
 * for (const r of fleet.readings({ untilTs: fleet.startTs + 7 * 86400e3 })) train(r);
 */
export function createFleet(opts: FleetOptions): Fleet {
  const seed = opts.seed ?? 1;
  const stepMs = opts.stepMs ?? 1000;
  const utcOffsetMinutes = opts.utcOffsetMinutes ?? 0;
  if (!Number.isInteger(seed)) throw new SimError('SIM_BAD_OPTION', `seed: ${seed} is not an integer`);
  if (!Number.isFinite(opts.startTs)) throw new SimError('SIM_BAD_OPTION', 'startTs: must be epoch milliseconds');
  if (!(stepMs >= 1) || !Number.isFinite(stepMs)) throw new SimError('SIM_BAD_OPTION', `stepMs: ${stepMs} must be >= 1`);
  if (opts.schedule !== undefined && !(SCHEDULES as readonly string[]).includes(opts.schedule)) {
    throw new SimError('SIM_BAD_OPTION', `schedule: "${opts.schedule}" unknown (known: ${SCHEDULES.join(', ')})`);
  }
  const specs = typeof opts.machines === 'number' ? defaultMachines(opts.machines, opts.mix) : [...opts.machines];
  const models: MachineModel[] = [];
  const byId = new Map<string, MachineModel>();
  for (const s of specs) {
    if (!NAME_PATTERN.test(s.id)) throw new SimError('SIM_BAD_MACHINE_ID', `machine id "${s.id}" must match [A-Za-z0-9_.-]{1,64}`);
    if (byId.has(s.id)) throw new SimError('SIM_DUPLICATE_MACHINE', `machine id "${s.id}" appears twice`);
    if (!(MACHINE_KINDS as readonly string[]).includes(s.kind)) throw new SimError('SIM_UNKNOWN_KIND', `machine ${s.id}: unknown kind "${s.kind}" (known: ${MACHINE_KINDS.join(', ')})`);
    if (s.schedule !== undefined && !(SCHEDULES as readonly string[]).includes(s.schedule)) {
      throw new SimError('SIM_BAD_OPTION', `machine ${s.id}: schedule "${s.schedule}" unknown (known: ${SCHEDULES.join(', ')})`);
    }
    const schedule = s.schedule ?? opts.schedule;
    const m = createMachine(s.kind, schedule === undefined ? { id: s.id, seed } : { id: s.id, seed, schedule });
    models.push(m);
    byId.set(s.id, m);
  }
  const faultClock = opts.faultClock ?? 'operating';
  if (!FAULT_CLOCKS.includes(faultClock)) throw new SimError('SIM_BAD_OPTION', `faultClock: "${String(faultClock)}" unknown (known: ${FAULT_CLOCKS.join(', ')})`);
  const faults: FaultSchedule[] = [];
  const labels: FaultLabel[] = [];
  // One course per label for `progress`, apart from the machines' own (each caches the day it last saw).
  const courses: FaultCourse[] = [];
  for (const req of opts.faults ?? []) {
    const m = byId.get(req.machine);
    if (!m) throw new SimError('SIM_UNKNOWN_MACHINE', `fault ${req.machine}:${req.fault}: no machine "${req.machine}" in the fleet (have: ${[...byId.keys()].join(', ')})`);
    const work = m.workPattern(utcOffsetMinutes);
    const f = scheduleFault(req, m.kind, opts.startTs, work, faultClock);
    const pattern = f.clock === 'operating' ? work : null;
    m.addFault(f, seed, new FaultCourse(f.onsetTs, f.failureTs, pattern));
    const course = new FaultCourse(f.onsetTs, f.failureTs, pattern);
    courses.push(course);
    faults.push(f);
    labels.push(labelOf(f, m.kind, course.courseMs));
  }
  const machines: MachineInfo[] = models.map((m) => ({ id: m.id, kind: m.kind, channels: channelsOf(m.kind) }));
  const ambient = new Ambient(hashSeed(seed, 'ambient'), opts.ambientBaseC ?? 20);
  // the building's heating/lighting follows the day shift, whatever machines are simulated
  const shopClock = new ShiftClock('two-shift', hashSeed(seed, 'shop'));
  const env = { ambientC: ambient.base, utcOffsetMinutes };
  const warmupMs = opts.warmupMs ?? 3 * 3_600_000;
  if (!(warmupMs >= 0)) throw new SimError('SIM_BAD_OPTION', `warmupMs: ${warmupMs} must be >= 0`);
  if (warmupMs > 0) {
    const wStep = Math.max(stepMs, 10_000);
    for (let t = opts.startTs - warmupMs; t < opts.startTs; t += wStep) {
      env.ambientC = ambient.step(t, wStep, utcOffsetMinutes, shopClock.isOn(t, utcOffsetMinutes) ? 1 : 0);
      for (const m of models) m.step(t, wStep, env);
    }
  }
  let ts = opts.startTs;

  const step = (): SimReading[] => {
    env.ambientC = ambient.step(ts, stepMs, utcOffsetMinutes, shopClock.isOn(ts, utcOffsetMinutes) ? 1 : 0);
    const out = new Array<SimReading>(models.length);
    for (let i = 0; i < models.length; i++) out[i] = (models[i] as MachineModel).step(ts, stepMs, env);
    ts += stepMs;
    return out;
  };

  function* readings(o: { untilTs?: number; steps?: number } = {}): Generator<SimReading, void, undefined> {
    let n = 0;
    for (;;) {
      if (o.untilTs !== undefined && ts >= o.untilTs) return;
      if (o.steps !== undefined && n >= o.steps) return;
      n++;
      const batch = step();
      for (let i = 0; i < batch.length; i++) yield batch[i] as SimReading;
    }
  }

  return {
    seed,
    startTs: opts.startTs,
    stepMs,
    machines,
    faults,
    labels,
    progress(i: number, ts: number): number {
      const c = courses[i];
      if (!c) throw new SimError('SIM_BAD_OPTION', `progress: no fault ${i} (the fleet has ${courses.length})`);
      return c.progress(ts);
    },
    get nextTs() {
      return ts;
    },
    get ambientC() {
      return env.ambientC;
    },
    step,
    readings,
  };
}
