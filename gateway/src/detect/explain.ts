/** Turning per-feature score contributions into contributors a maintenance lead can read. */
import type { Contributor } from '../contract/detection.js';
import type { ModelParams } from './baseline.js';
import { standardizeWith } from './baseline.js';
import { parseFeatureKey } from './features.js';

const RATIO_FEATURES = new Set(['std', 'rms', 'crest']);

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.1) return v.toFixed(2);
  return v.toPrecision(2);
}

/**
 * Top contributors of one scored window. `contrib` is the model's per-feature share of the score
 * (z_i (P z)_i for the built-in model); without it, the squared standardised deviation is used.
 */
export function explain(x: Float64Array, p: ModelParams, contrib: Float64Array | null, modeIndex: number | null, zClip: number, count: number): Contributor[] {
  const mode = p.modes[modeIndex !== null && modeIndex >= 0 && modeIndex < p.modes.length ? modeIndex : 0];
  const center = mode ? mode.center : p.center;
  const scale = mode ? mode.scale : p.scale;
  const z = standardizeWith(x, center, scale, zClip);
  const f = p.featureKeys.length;
  const c = contrib ?? Float64Array.from(z, (v) => v * v);
  const idx = Array.from({ length: f }, (_, i) => i)
    .filter((i) => (c[i] as number) > 0 && !Number.isNaN(x[i] as number))
    .sort((a, b) => (c[b] as number) - (c[a] as number))
    .slice(0, count);
  const out: Contributor[] = [];
  for (const i of idx) {
    const key = p.featureKeys[i] as string;
    const parsed = parseFeatureKey(key);
    if (!parsed) continue;
    const { metric, feature } = parsed;
    const value = x[i] as number;
    const base = center[i] as number;
    const zi = z[i] as number;
    if (Math.abs(zi) < 2 && mode && contrib) {
      // Large share without a large deviation of its own: the relationship with other channels broke.
      let partner = -1;
      let best = 0;
      for (let j = 0; j < f; j++) {
        if (j === i) continue;
        const cross = zi * (mode.precision[i * f + j] as number) * (z[j] as number);
        if (cross > best) {
          best = cross;
          partner = j;
        }
      }
      const pk = partner >= 0 ? parseFeatureKey(p.featureKeys[partner] as string) : undefined;
      const withWhat = pk ? ` out of line with ${pk.metric} ${pk.feature} ${fmt(x[partner] as number)}` : ' out of line with the other channels';
      out.push({
        metric,
        feature: 'relation',
        value,
        baseline: base,
        ratio: Number(zi.toFixed(2)),
        text: `${metric} ${feature} ${fmt(value)}${withWhat} (each within its normal range)`,
      });
      continue;
    }
    if (feature === 'logstd' || (feature === 'std' && value === 0)) {
      // Reported as the std itself: ratio of fluctuation to the baseline's.
      const v = feature === 'logstd' ? Math.exp(value) : value;
      const b = feature === 'logstd' ? Math.exp(base) : base;
      const ratio = b > 0 ? v / b : 0;
      const frozen = ratio < 0.05;
      out.push({
        metric,
        feature: 'std',
        value: v,
        baseline: b,
        ratio: Number(ratio.toFixed(2)),
        text: frozen ? `${metric} frozen: no variation (normally std ${fmt(b)})` : `${metric} std ${fmt(ratio)}x baseline`,
      });
    } else if (feature === 'presence') {
      out.push({ metric, feature, value, baseline: base, ratio: Number(zi.toFixed(2)), text: `${metric} missing from ${Math.round((1 - value) * 100)}% of readings (normally ${Math.round((1 - base) * 100)}%)` });
    } else if (RATIO_FEATURES.has(feature) && base > 0) {
      const ratio = value / base;
      out.push({ metric, feature, value, baseline: base, ratio: Number(ratio.toFixed(2)), text: `${metric} ${feature} ${fmt(ratio)}x baseline` });
    } else {
      // The text reports the real deviation: the clipped zi (used for scoring and for the relation
      // test above) would print every large shift as "+10 sd" and hide which one is worse.
      const s = scale[i] as number;
      const zRaw = s > 0 ? (value - base) / s : zi;
      const sign = zRaw >= 0 ? '+' : '-';
      // A slope per minute: a counter's rate (counters.ts) reads as "parts per minute".
      const what = feature === 'slope' ? `${metric} rate ${fmt(value * 60)}/min vs baseline ${fmt(base * 60)}/min` : `${metric} ${feature} ${fmt(value)} vs baseline ${fmt(base)}`;
      out.push({
        metric,
        feature,
        value,
        baseline: base,
        ratio: Number(zRaw.toFixed(2)),
        text: `${what} (${sign}${fmt(Math.abs(zRaw))} sd)`,
      });
    }
  }
  return out;
}

/**
 * Contributor for a sustained drift of one feature: its moving-average residual `ewma` (conditional sd:
 * beyond what the machine's other channels explain) is `value` times its baseline spread.
 */
export function driftContributor(p: ModelParams, feature: number, ewma: number, value: number, x: Float64Array, timeConstantMs: number): Contributor | undefined {
  const parsed = parseFeatureKey(p.featureKeys[feature] ?? '');
  if (!parsed) return undefined;
  const { metric, feature: f } = parsed;
  const what = f === 'logstd' ? 'fluctuation' : f === 'presence' ? 'presence' : f;
  const dir = ewma >= 0 ? 'higher' : 'lower';
  const mins = Math.round(timeConstantMs / 60_000);
  const span = mins >= 120 ? `${fmt(mins / 60)} h` : `${mins} min`;
  const raw = x[feature] as number;
  const v = f === 'logstd' ? Math.exp(raw) : raw;
  const base = f === 'logstd' ? Math.exp(p.center[feature] as number) : (p.center[feature] as number);
  return {
    metric,
    feature: 'drift',
    value: Number.isFinite(v) ? v : base,
    baseline: base,
    ratio: Number(value.toFixed(2)),
    text: `${metric} ${what} persistently ${dir} than the other channels explain (${fmt(Math.abs(ewma))} sd on average over ~${span}, ${fmt(value)}x its normal spread)`,
  };
}

/**
 * Contributor for recurring far-out windows of one feature: `count` of the last `slots` slots held one,
 * where the machine's baseline makes about `expected` per horizon.
 */
export function recurrenceContributor(p: ModelParams, feature: number, count: number, expected: number, cal: { horizonMs: number; slots: number }): Contributor | undefined {
  const parsed = parseFeatureKey(p.featureKeys[feature] ?? '');
  if (!parsed) return undefined;
  const { metric, feature: f } = parsed;
  const what = f === 'logstd' ? 'fluctuation (spikes or bursts)' : f === 'presence' ? 'presence (gaps)' : f;
  const slotMin = cal.horizonMs / cal.slots / 60_000;
  const whole = (v: number) => (Number.isInteger(v) ? String(v) : fmt(v));
  const slot = slotMin >= 1 ? `${whole(slotMin)}-minute` : `${whole(slotMin * 60)}-second`;
  return {
    metric,
    feature: 'recurrence',
    value: count,
    baseline: Number(expected.toPrecision(3)),
    ratio: expected > 0 ? Number((count / expected).toFixed(1)) : count,
    text: `${metric} ${what} far out in ${count} of the last ${cal.slots} ${slot} periods (baseline about ${fmt(expected)})`,
  };
}
