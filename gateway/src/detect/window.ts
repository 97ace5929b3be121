/**
 * Event-time windowing for one machine.
 *
 * Windows are [start, start + windowMs) with start a multiple of hopMs since the epoch, so windows of
 * different machines line up (one scoring batch per hop). The watermark is the machine's largest event
 * time seen minus latenessMs: a window closes once the watermark passes its end. A reading older than the
 * watermark (or whose windows are all closed) is late: it is counted and left out of scoring (it is still
 * stored by the ingest path; detection never sees storage). Only windows that received readings exist, so
 * a machine that resumes after a day does not iterate over empty windows.
 */
import { MetricAccumulator, type FeatureValues } from './features.js';

export interface WindowOptions {
  windowMs: number;
  hopMs: number;
  latenessMs: number;
  /** Windows with fewer readings are not scored (counted as sparse). */
  minSamples: number;
}

export interface ClosedWindow {
  machine: string;
  start: number;
  end: number;
  /** Readings in the window. */
  count: number;
  /** Features per metric present in the window (metrics absent from the window are absent here). */
  metrics: Map<string, FeatureValues>;
}

interface OpenWindow {
  count: number;
  metrics: Map<string, MetricAccumulator>;
}

export type PushResult = 'accepted' | 'late';

export class MachineWindower {
  private readonly open = new Map<number, OpenWindow>();
  private maxTs = -Infinity;
  /** Every window with end <= closedUpTo has been closed. */
  private closedUpTo = -Infinity;
  lateReadings = 0;
  sparseWindows = 0;

  constructor(
    readonly machine: string,
    private readonly opts: WindowOptions,
  ) {}

  /** Largest event time seen (epoch ms), or -Infinity. */
  get lastEventTs(): number {
    return this.maxTs;
  }

  get openWindows(): number {
    return this.open.size;
  }

  /** Add a reading; windows that the advancing watermark closes are passed to `emit` in start order. */
  push(ts: number, metrics: Record<string, number>, emit: (w: ClosedWindow) => void): PushResult {
    const { windowMs, hopMs, latenessMs } = this.opts;
    if (ts < this.maxTs - latenessMs) {
      this.lateReadings += 1;
      return 'late';
    }
    let placed = false;
    for (let s = Math.floor(ts / hopMs) * hopMs; s > ts - windowMs; s -= hopMs) {
      if (s + windowMs <= this.closedUpTo) continue;
      let w = this.open.get(s);
      if (!w) {
        w = { count: 0, metrics: new Map() };
        this.open.set(s, w);
      }
      w.count += 1;
      const tSec = (ts - s) / 1000;
      for (const name in metrics) {
        const v = metrics[name];
        if (v === undefined || !Number.isFinite(v)) continue;
        let acc = w.metrics.get(name);
        if (!acc) {
          acc = new MetricAccumulator();
          w.metrics.set(name, acc);
        }
        acc.add(tSec, v);
      }
      placed = true;
    }
    if (!placed) {
      this.lateReadings += 1;
      return 'late';
    }
    if (ts > this.maxTs) {
      this.maxTs = ts;
      this.closeUpTo(ts - latenessMs, emit);
    }
    return 'accepted';
  }

  /** Close every window whose end is <= watermark. */
  closeUpTo(watermark: number, emit: (w: ClosedWindow) => void): void {
    const { windowMs } = this.opts;
    const due: number[] = [];
    for (const s of this.open.keys()) if (s + windowMs <= watermark) due.push(s);
    if (due.length === 0) return;
    due.sort((a, b) => a - b);
    for (const s of due) this.closeOne(s, emit);
  }

  /** Close all open windows (the machine went quiet, or shutdown). */
  closeAll(emit: (w: ClosedWindow) => void): void {
    const due = [...this.open.keys()].sort((a, b) => a - b);
    for (const s of due) this.closeOne(s, emit);
  }

  private closeOne(s: number, emit: (w: ClosedWindow) => void): void {
    const w = this.open.get(s);
    if (!w) return;
    this.open.delete(s);
    const end = s + this.opts.windowMs;
    if (end > this.closedUpTo) this.closedUpTo = end;
    if (w.count < this.opts.minSamples) {
      this.sparseWindows += 1;
      return;
    }
    const metrics = new Map<string, FeatureValues>();
    for (const [name, acc] of w.metrics) metrics.set(name, acc.values(w.count));
    emit({ machine: this.machine, start: s, end, count: w.count, metrics });
  }
}
