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
    if (Math.abs(zi) < 3 && mode && contrib) {
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
    if (feature === 'presence') {
      out.push({ metric, feature, value, baseline: base, ratio: Number(zi.toFixed(2)), text: `${metric} missing from ${Math.round((1 - value) * 100)}% of readings (normally ${Math.round((1 - base) * 100)}%)` });
    } else if (RATIO_FEATURES.has(feature) && base > 0) {
      const ratio = value / base;
      out.push({ metric, feature, value, baseline: base, ratio: Number(ratio.toFixed(2)), text: `${metric} ${feature} ${fmt(ratio)}x baseline` });
    } else {
      const sign = zi >= 0 ? '+' : '-';
      out.push({
        metric,
        feature,
        value,
        baseline: base,
        ratio: Number(zi.toFixed(2)),
        text: `${metric} ${feature} ${fmt(value)} vs baseline ${fmt(base)} (${sign}${fmt(Math.abs(zi))} sd)`,
      });
    }
  }
  return out;
}
