/** Small statistics helpers shared by the orchestrator and the load generator. */

/** Log-scale latency histogram (ms), mergeable across processes: bucket i covers [B^i, B^(i+1)) * 0.05 ms. */
export class Hist {
  static readonly BASE = 1.05;
  static readonly MIN_MS = 0.05;
  static readonly BUCKETS = 300; // 0.05 ms * 1.05^300 ~ 110 minutes
  counts: number[];
  n = 0;
  max = 0;
  constructor(counts?: number[]) {
    this.counts = counts ? counts.slice() : new Array<number>(Hist.BUCKETS).fill(0);
    if (counts) this.n = counts.reduce((a, b) => a + b, 0);
  }
  add(ms: number): void {
    const i = ms <= Hist.MIN_MS ? 0 : Math.min(Hist.BUCKETS - 1, Math.floor(Math.log(ms / Hist.MIN_MS) / Math.log(Hist.BASE)));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.n++;
    if (ms > this.max) this.max = ms;
  }
  merge(other: { counts: number[]; max?: number }): void {
    for (let i = 0; i < Hist.BUCKETS; i++) {
      const c = other.counts[i] ?? 0;
      if (c) {
        this.counts[i] = (this.counts[i] ?? 0) + c;
        this.n += c;
      }
    }
    if (other.max !== undefined && other.max > this.max) this.max = other.max;
  }
  /** Quantile q in [0,1]: upper edge of the bucket holding it (resolution 5 %), null when empty. */
  quantile(q: number): number | null {
    if (this.n === 0) return null;
    const target = Math.ceil(q * this.n);
    let acc = 0;
    for (let i = 0; i < Hist.BUCKETS; i++) {
      acc += this.counts[i] ?? 0;
      if (acc >= target) return Math.min(this.max, Hist.MIN_MS * Hist.BASE ** (i + 1));
    }
    return this.max;
  }
  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.max = 0;
  }
}

/** Exact quantile of a sample (nearest rank). */
export function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}

export function round(x: number | null | undefined, digits = 1): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
