import { SimError } from './errors.js';
import { daySpans } from './schedule.js';
import type { ScheduleName } from './types.js';

const DAY_MS = 86_400_000;
const MIN_MS = 60_000;
/** A search for the failure instant gives up after this much calendar time (no schedule is off that long). */
const SEARCH_LIMIT_MS = 400 * DAY_MS;

/**
 * The clock a fault progresses by. `operating`: only while the machine's shift has it running (wear and
 * clogging need the machine to run: a bearing does not wear over the weekend). `calendar`: all the time
 * (a sensor's electronics age whether or not the machine runs; also the behaviour before 2026-12-02).
 */
export type FaultClock = 'operating' | 'calendar';
export const FAULT_CLOCKS: readonly FaultClock[] = ['operating', 'calendar'];

/** A machine's work pattern as the fault clock needs it: the same inputs as its ShiftClock. */
export interface WorkPattern {
  schedule: ScheduleName;
  jitterKey: number;
  utcOffsetMinutes: number;
}

/** The on-intervals of one local day as epoch ms, in order. */
function onIntervals(p: WorkPattern, day: number): Array<[number, number]> {
  const base = day * DAY_MS - p.utcOffsetMinutes * MIN_MS;
  const spans = p.schedule === 'continuous' ? [{ start: 0, end: 1440 }] : daySpans(p.schedule, day, p.jitterKey);
  return spans.map((s) => [base + s.start * MIN_MS, base + s.end * MIN_MS]);
}

function localDay(ts: number, p: WorkPattern): number {
  return Math.floor((ts + p.utcOffsetMinutes * MIN_MS) / DAY_MS);
}

/** Milliseconds within [a, b) during which the pattern has the machine on. */
export function operatingMs(p: WorkPattern, a: number, b: number): number {
  if (!(b > a)) return 0;
  if (p.schedule === 'continuous') return b - a;
  let sum = 0;
  for (let d = localDay(a, p); d <= localDay(b, p); d++) {
    for (const [s, e] of onIntervals(p, d)) sum += Math.max(0, Math.min(e, b) - Math.max(s, a));
  }
  return sum;
}

/** The instant at which the machine has been on for `ms` since `a` (`a` itself for ms <= 0). Throws SimError when never. */
export function afterOperating(p: WorkPattern, a: number, ms: number): number {
  if (!(ms > 0)) return a;
  if (p.schedule === 'continuous') return a + ms;
  let left = ms;
  for (let d = localDay(a, p); (d - localDay(a, p)) * DAY_MS < SEARCH_LIMIT_MS; d++) {
    for (const [s, e] of onIntervals(p, d)) {
      const from = Math.max(s, a);
      if (e <= from) continue;
      // whole milliseconds: labels and readings carry integer epoch ms
      if (e - from >= left) return Math.ceil(from + left);
      left -= e - from;
    }
  }
  throw new SimError('SIM_BAD_FAULT_SPEC', `schedule ${p.schedule} never runs the machine for ${ms} ms after ${new Date(a).toISOString()}`);
}

/**
 * A fault's progress u from 0 at onset to 1 at failure, on its clock. Calendar: the share of the
 * interval elapsed. Operating: the share of the interval's running time elapsed, so the fault stands
 * still while the machine does (and an interval with no running time at all falls back to calendar).
 * Cheap per step for increasing `ts` (whole days are added up once); any `ts` is answered correctly.
 */
export class FaultCourse {
  private readonly totalMs: number;
  private day = Number.NaN;
  /** Running time from onset to the start of `day`'s local midnight. */
  private beforeDay = 0;
  private intervals: Array<[number, number]> = [];

  constructor(
    readonly onsetTs: number,
    readonly failureTs: number,
    private readonly pattern: WorkPattern | null,
  ) {
    this.totalMs = pattern && pattern.schedule !== 'continuous' ? operatingMs(pattern, onsetTs, failureTs) : failureTs - onsetTs;
  }

  /** Running time between onset and failure (the whole interval on the calendar clock). */
  get courseMs(): number {
    return this.totalMs;
  }

  progress(ts: number): number {
    if (ts <= this.onsetTs) return 0;
    if (ts >= this.failureTs) return 1;
    const span = this.failureTs - this.onsetTs;
    const p = this.pattern;
    if (!p || p.schedule === 'continuous' || this.totalMs <= 0) return (ts - this.onsetTs) / span;
    const d = localDay(ts, p);
    if (d !== this.day) {
      const midnight = d * DAY_MS - p.utcOffsetMinutes * MIN_MS;
      // Moving forward by a day adds the previous day's running time; anything else recomputes.
      if (d === this.day + 1) this.beforeDay += this.intervals.reduce((s, [a, b]) => s + Math.max(0, b - Math.max(a, this.onsetTs)), 0);
      else this.beforeDay = operatingMs(p, this.onsetTs, Math.max(this.onsetTs, midnight));
      this.day = d;
      this.intervals = onIntervals(p, d).map(([a, b]) => [Math.max(a, midnight), Math.min(b, this.failureTs)] as [number, number]).filter(([a, b]) => b > a);
    }
    let today = 0;
    for (const [a, b] of this.intervals) today += Math.max(0, Math.min(b, ts) - Math.max(a, this.onsetTs));
    return Math.min(1, (this.beforeDay + today) / this.totalMs);
  }
}
