/**
 * Report by exception: machines whose readings carry only the metrics that changed.
 *
 * Sparkplug B and many PLC gateways send a value only when it moved past a deadband. A channel that holds
 * steady is then absent from most windows. The baseline models only metrics present in at least half of
 * its windows, so the steadiest channels (temperatures) dropped out of the model. A stable stretch also had
 * no readings at all, so it had no windows. For such a machine (cadence.ts tells it from its first
 * readings) each reading is completed with the last value of every metric it does not carry. Sample and
 * hold, as a historian reads such data. A gap without readings is filled with held readings every
 * `stepMs`, at most `maxMs` after the last real reading; past that the machine counts as silent, as a
 * periodic publisher that stopped would. The completed readings go to the ordinary windower.
 */

/** Fill a gap for at most this long after the last real reading. Past it the machine counts as silent. */
export const HOLD_MAX_MS = 15 * 60_000;

export class HoldExpander {
  private readonly last = new Map<string, number>();
  /** Event time of the last reading emitted, real or filled. */
  private lastTs = -Infinity;
  private lastRealTs = -Infinity;

  constructor(
    private readonly stepMs: number,
    private readonly maxMs = HOLD_MAX_MS,
  ) {}

  /** Values held now, one object per call (the windower keeps nothing of it). */
  private held(): Record<string, number> {
    const m: Record<string, number> = {};
    for (const [k, v] of this.last) m[k] = v;
    return m;
  }

  /**
   * Emit the filled readings of the gap before `ts`, then the reading completed with held values. A reading
   * older than the last emitted one is emitted as it is (the windower decides whether it is late).
   */
  expand(ts: number, metrics: Readonly<Record<string, number>>, emit: (ts: number, metrics: Record<string, number>) => void): void {
    if (ts < this.lastTs) {
      emit(ts, { ...metrics });
      return;
    }
    if (this.last.size > 0) {
      const until = Math.min(ts, this.lastRealTs + this.maxMs);
      for (let t = this.lastTs + this.stepMs; t < until; t += this.stepMs) {
        emit(t, this.held());
        this.lastTs = t;
      }
    }
    for (const k in metrics) {
      const v = metrics[k];
      if (v !== undefined && Number.isFinite(v)) this.last.set(k, v);
    }
    this.lastTs = ts;
    this.lastRealTs = ts;
    emit(ts, this.held());
  }
}
