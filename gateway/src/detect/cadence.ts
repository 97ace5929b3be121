/**
 * A machine's sampling cadence, and the window length that follows from it.
 *
 * The configured window (60 s by default) suits a machine that reports every second or every few seconds.
 * A machine that reports every 30 s or every minute (many PLCs and retrofit sensors) would put one or two
 * readings in each such window: every window would be sparse (fewer than minSamplesPerWindow readings)
 * and the machine would never be scored. So before a machine starts learning, its first readings are held
 * back until the interval between its readings is known; its windows and hops are then a whole multiple
 * (the scale) of the configured ones, the smallest that puts `targetSamples` readings in a window. The
 * held readings then go through the windower in arrival order, so nothing is lost and a machine at scale 1
 * gets exactly the windows it would have had without the probe.
 */
import type { Reading } from '../contract/reading.js';

/** Intervals measured before the scale is chosen (distinct event times minus one). */
export const PROBE_INTERVALS = 8;
/** Readings held per machine while its cadence is measured; past this the scale is chosen with what there is. */
export const PROBE_MAX_READINGS = 512;

export interface ScaleLimits {
  windowMs: number;
  hopMs: number;
  /** Readings a window should hold; 0 = always scale 1 (the configured windows). */
  targetSamples: number;
  /** Largest window allowed (ms). */
  maxWindowMs: number;
  /** The baseline period must hold at least this many hops of the scaled windows. */
  baselineMs: number;
  minWindows: number;
}

/**
 * Median interval between distinct event times, or null with fewer than two. The median, not the mean:
 * a machine switched off for a while between two readings must not look like a slow sender.
 */
export function medianInterval(timestamps: readonly number[]): number | null {
  const ts = [...new Set(timestamps)].sort((a, b) => a - b);
  if (ts.length < 2) return null;
  const d: number[] = [];
  for (let i = 1; i < ts.length; i++) d.push((ts[i] as number) - (ts[i - 1] as number));
  d.sort((a, b) => a - b);
  const mid = d.length >> 1;
  return d.length % 2 === 1 ? (d[mid] as number) : ((d[mid - 1] as number) + (d[mid] as number)) / 2;
}

/**
 * A clock a few per mille slow (a PLC "every 30 s" that is 30.03 s apart) must not take the next multiple:
 * the target is met within this share.
 */
const INTERVAL_TOLERANCE = 0.05;

/**
 * Smallest whole multiple m of the configured window with m x windowMs >= targetSamples x interval
 * (within INTERVAL_TOLERANCE), capped so a window stays within maxWindowMs and the baseline period still
 * holds minWindows hops.
 */
export function windowScale(intervalMs: number | null, l: ScaleLimits): number {
  if (intervalMs === null || !(intervalMs > 0) || l.targetSamples <= 0) return 1;
  const want = Math.ceil(((1 - INTERVAL_TOLERANCE) * l.targetSamples * intervalMs) / l.windowMs - 1e-9);
  const cap = Math.max(1, Math.min(Math.floor(l.maxWindowMs / l.windowMs), Math.floor(l.baselineMs / (l.minWindows * l.hopMs))));
  return Math.max(1, Math.min(want, cap));
}

/**
 * Below this mean share of the machine's metrics per distinct event time, it reports by exception (hold.ts).
 * A periodic publisher carries every metric at every time (one message per metric at the same time
 * counts as one time); one channel dropping out leaves 6 of 7 (0.86).
 */
export const PARTIAL_SHARE = 0.75;

/** The readings of one machine held back while its cadence is measured. */
export class CadenceProbe {
  readonly held: Reading[] = [];
  private readonly times = new Map<number, Set<string>>();

  add(r: Reading): void {
    this.held.push(r);
    let set = this.times.get(r.ts);
    if (!set) this.times.set(r.ts, (set = new Set()));
    for (const k in r.metrics) set.add(k);
  }

  /** Enough to choose: PROBE_INTERVALS intervals seen, or the hold is full. */
  get ready(): boolean {
    return this.times.size > PROBE_INTERVALS || this.held.length >= PROBE_MAX_READINGS;
  }

  interval(): number | null {
    return medianInterval([...this.times.keys()]);
  }

  /** The readings carry only some of the machine's metrics each (report by exception). */
  partial(): boolean {
    const all = new Set<string>();
    for (const set of this.times.values()) for (const k of set) all.add(k);
    if (all.size < 2 || this.times.size < 2) return false;
    let share = 0;
    for (const set of this.times.values()) share += set.size / all.size;
    return share / this.times.size < PARTIAL_SHARE;
  }
}
