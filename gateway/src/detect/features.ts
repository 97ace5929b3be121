/**
 * Incremental per-metric window features.
 *
 * Every feature is derived from order-independent running sums, so readings that arrive out of order
 * (within the lateness bound) give exactly the same features as in-order ones, in O(1) per sample and
 * O(1) memory per metric per window. Power sums are taken around a shift (the metric's first value in
 * the window) so that large offsets (e.g. 1500 rpm +- 2) do not lose precision in float64.
 */

/** Features computed for every metric of every window. */
export const FEATURE_NAMES = ['mean', 'std', 'min', 'max', 'rms', 'slope', 'kurtosis', 'crest', 'presence', 'logstd'] as const;
export type FeatureName = (typeof FEATURE_NAMES)[number];

export type FeatureValues = Record<FeatureName, number>;

/** Running sums of one metric inside one window. */
export class MetricAccumulator {
  n = 0;
  private shift = 0;
  // Power sums of y = x - shift.
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private s4 = 0;
  // Sums for the least-squares slope; t in seconds relative to the window start.
  private st = 0;
  private stt = 0;
  private sty = 0;
  min = Infinity;
  max = -Infinity;

  add(tSeconds: number, x: number): void {
    if (this.n === 0) this.shift = x;
    const y = x - this.shift;
    const y2 = y * y;
    this.n += 1;
    this.s1 += y;
    this.s2 += y2;
    this.s3 += y2 * y;
    this.s4 += y2 * y2;
    this.st += tSeconds;
    this.stt += tSeconds * tSeconds;
    this.sty += tSeconds * y;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
  }

  /**
   * Population statistics (divide by n): a window is the whole population we describe.
   * kurtosis is excess kurtosis (0 for a normal distribution, 0 when the window is constant);
   * slope is units per second (least squares, 0 with fewer than two distinct times);
   * crest is max|x| / rms (0 when rms is 0); presence is the share of the window's readings that
   * carried this metric (a channel dropping out shows here before it disappears); logstd is
   * ln(std + 0.001 |mean| + 1e-9): fluctuation on a ratio scale, so "4x the usual" and "frozen"
   * (std 0) are both far from normal, whatever the channel's units.
   */
  values(windowCount: number): FeatureValues {
    const n = this.n;
    const presence = windowCount > 0 ? n / windowCount : 0;
    if (n === 0) {
      return { mean: 0, std: 0, min: 0, max: 0, rms: 0, slope: 0, kurtosis: 0, crest: 0, presence, logstd: Math.log(1e-9) };
    }
    const m1 = this.s1 / n;
    const e2 = this.s2 / n;
    const e3 = this.s3 / n;
    const e4 = this.s4 / n;
    const mean = this.shift + m1;
    const varRaw = e2 - m1 * m1;
    // Treat variance below float64 noise of the sums as zero so constant windows give std 0 exactly.
    const variance = varRaw > 1e-12 * Math.max(1, e2) ? varRaw : 0;
    const std = Math.sqrt(variance);
    let kurtosis = 0;
    if (variance > 0) {
      const m4 = e4 - 4 * m1 * e3 + 6 * m1 * m1 * e2 - 3 * m1 ** 4;
      kurtosis = m4 / (variance * variance) - 3;
    }
    const meanSq = Math.max(0, e2 + 2 * this.shift * m1 + this.shift * this.shift);
    const rms = Math.sqrt(meanSq);
    const peak = Math.max(Math.abs(this.min), Math.abs(this.max));
    const crest = rms > 0 ? peak / rms : 0;
    const den = n * this.stt - this.st * this.st;
    const slope = den > 1e-12 * Math.max(1, n * this.stt) ? (n * this.sty - this.st * this.s1) / den : 0;
    const logstd = Math.log(std + 1e-3 * Math.abs(mean) + 1e-9);
    return { mean, std, min: this.min, max: this.max, rms, slope, kurtosis, crest, presence, logstd };
  }
}

/** Name of one model input feature: `<metric>:<feature>`. */
export function featureKey(metric: string, feature: FeatureName): string {
  return `${metric}:${feature}`;
}

export function parseFeatureKey(key: string): { metric: string; feature: FeatureName } | undefined {
  const i = key.lastIndexOf(':');
  if (i <= 0) return undefined;
  const feature = key.slice(i + 1);
  if (!(FEATURE_NAMES as readonly string[]).includes(feature)) return undefined;
  return { metric: key.slice(0, i), feature: feature as FeatureName };
}
