/**
 * Counters: channels that only count up (parts made, cycles, energy in kWh, operating hours).
 *
 * Their level grows for ever. After any baseline a counter sits above everything the baseline saw,
 * so modelled by its level (mean, min, max, rms; logstd, which includes 0.001 |mean|) it would open an
 * anomaly alert soon after the baseline and keep it open for good: a false alert on every machine that
 * publishes one, which also hides the real ones. What carries information is how fast it counts. So a
 * counter's level features are replaced by its slope (units per second within the window: the rate);
 * its other features (std, kurtosis, presence) stay.
 *
 * A metric is a counter when, over the baseline windows in time order, its window mean rises between at
 * least MIN_RISING of consecutive windows and falls between at most MAX_FALLING of them and at most a
 * tenth as often as it rises (resets: a shift counter set to zero, a roll-over). A measured quantity, however slowly it trends, falls between about
 * half of its windows (noise); a counter never does.
 */
import type { FeatureName, FeatureValues } from './features.js';

// 2 %: a press that ran a few hours of its baseline week still counts up in that many windows.
const MIN_RISING = 0.02;
const MAX_FALLING = 0.01;
/** Fewer window pairs than this say too little. */
const MIN_PAIRS = 10;

/** Level features: replaced by `slope` for a counter. */
export const LEVEL_FEATURES: ReadonlySet<FeatureName> = new Set<FeatureName>(['mean', 'min', 'max', 'rms', 'logstd', 'crest']);

/** Metrics that behave as counters over these windows (time order). */
export function counterMetrics(rows: ReadonlyArray<ReadonlyMap<string, FeatureValues>>): Set<string> {
  const last = new Map<string, number>();
  const tally = new Map<string, { up: number; down: number; pairs: number }>();
  for (const row of rows) {
    for (const [metric, fv] of row) {
      const m = fv.mean;
      if (!Number.isFinite(m)) continue;
      const prev = last.get(metric);
      last.set(metric, m);
      if (prev === undefined) continue;
      let t = tally.get(metric);
      if (!t) {
        t = { up: 0, down: 0, pairs: 0 };
        tally.set(metric, t);
      }
      t.pairs++;
      // Relative tolerance: the mean of the same readings summed in another order differs in the last bits.
      const eps = 1e-12 * Math.max(1, Math.abs(prev));
      if (m > prev + eps) t.up++;
      else if (m < prev - eps) t.down++;
    }
  }
  const out = new Set<string>();
  for (const [metric, t] of tally) {
    if (t.pairs >= MIN_PAIRS && t.up >= MIN_RISING * t.pairs && t.down <= Math.min(MAX_FALLING * t.pairs, 0.1 * t.up)) out.add(metric);
  }
  return out;
}

/** The features a counter is modelled by, from the configured set: level features become one `slope`. */
export function counterFeatures(featureSet: readonly FeatureName[]): FeatureName[] {
  const out: FeatureName[] = [];
  for (const f of featureSet) {
    const g = LEVEL_FEATURES.has(f) ? 'slope' : f;
    if (!out.includes(g)) out.push(g);
  }
  return out;
}
