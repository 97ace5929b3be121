/**
 * Per-machine baseline: what "normal" looks like for one machine, learnt from its own first windows.
 *
 * A machine has operating modes (running, idle between jobs, off during breaks), so the baseline is a
 * small mixture: baseline windows are clustered into modes (k-means, k chosen by BIC, deterministic), and
 * each mode gets a regularised Mahalanobis model over standardised window features:
 *   z_m = clip((x - center_m) / scale_m, +-zClip)
 *   s_m = z_m^T P_m z_m,   P_m = ((1 - a_m) R_m + a_m I)^-1 / F
 *   score = min over modes of s_m
 * with R_m the correlation of the mode's windows and a_m the Ledoit-Wolf shrinkage. The diagonal part
 * catches a channel leaving its range; the off-diagonal part catches a broken relationship between
 * channels that each stay in range (current up while speed is flat: along a direction the baseline
 * never varied in, the precision is up to 1/a times larger). Dividing by F makes a healthy score about 1
 * whatever the number of features. The min over modes means a machine is normal if it looks like any
 * of its normal modes.
 */
import type { FeatureName, FeatureValues } from './features.js';
import { featureKey, parseFeatureKey } from './features.js';
import { counterFeatures } from './counters.js';
import { invertSpd, logDetSpd } from './linalg.js';

export interface ModeParams {
  center: number[];
  scale: number[];
  /** F x F row-major, already divided by F. */
  precision: number[];
  /** Baseline windows in this mode. */
  windows: number;
}

export interface ModelParams {
  featureKeys: string[];
  /** Over all baseline windows (used for the `z` input of bring-your-own models and for explanations). */
  center: number[];
  scale: number[];
  modes: ModeParams[];
}

export interface FitOptions {
  /** Lower bound on the Ledoit-Wolf shrinkage. */
  minShrinkage: number;
  scaleFloorRel: number;
  scaleFloorAbs: number;
  maxModes: number;
  minModeWindows: number;
}

export type FeatureRow = Map<string, FeatureValues>;

/**
 * Metrics that appear in at least `presence` of the baseline windows, sorted by name, crossed with the
 * model's per-metric features in the manifest's order (for a counter, its rate in place of level features). Sorting makes the order reproducible across
 * restarts regardless of the order metrics first arrived in.
 */
export function selectFeatureKeys(rows: readonly FeatureRow[], featureSet: readonly FeatureName[], presence = 0.5, maxFeatures = Infinity, counters: ReadonlySet<string> = new Set()): string[] {
  const counts = new Map<string, number>();
  for (const r of rows) for (const m of r.keys()) counts.set(m, (counts.get(m) ?? 0) + 1);
  const metrics = [...counts.entries()]
    .filter(([, c]) => c >= presence * rows.length)
    .map(([m]) => m)
    .sort();
  const keys: string[] = [];
  const forCounter = counterFeatures(featureSet);
  for (const m of metrics) {
    // A counter (counters.ts) is modelled by its rate, not by a level that grows for ever.
    const set = counters.has(m) ? forCounter : featureSet;
    if (keys.length + set.length > maxFeatures) break;
    for (const f of set) keys.push(featureKey(m, f));
  }
  return keys;
}

/**
 * Raw feature vector of a window in `keys` order. A metric absent from the window is NaN (imputed at the
 * center when scoring) except its presence, which is 0: the channel is missing, that is the information.
 */
export function vectorize(row: FeatureRow, keys: readonly string[]): Float64Array {
  const x = new Float64Array(keys.length);
  for (let j = 0; j < keys.length; j++) {
    const k = parseFeatureKey(keys[j] as string);
    if (!k) {
      x[j] = NaN;
      continue;
    }
    const fv = row.get(k.metric);
    if (!fv) {
      x[j] = k.feature === 'presence' ? 0 : NaN;
      continue;
    }
    const v = fv[k.feature];
    x[j] = Number.isFinite(v) ? v : NaN;
  }
  return x;
}

interface Stats {
  center: number[];
  scale: number[];
}

function columnStats(vectors: readonly Float64Array[], keys: readonly string[], opts: FitOptions, floorScale?: readonly number[]): Stats {
  const f = keys.length;
  const center = new Array<number>(f).fill(0);
  const counts = new Array<number>(f).fill(0);
  for (const v of vectors) {
    for (let j = 0; j < f; j++) {
      const x = v[j] as number;
      if (!Number.isNaN(x)) {
        center[j] = (center[j] as number) + x;
        counts[j] = (counts[j] as number) + 1;
      }
    }
  }
  for (let j = 0; j < f; j++) center[j] = (counts[j] as number) > 0 ? (center[j] as number) / (counts[j] as number) : 0;
  const sq = new Array<number>(f).fill(0);
  for (const v of vectors) {
    for (let j = 0; j < f; j++) {
      const x = v[j] as number;
      if (!Number.isNaN(x)) sq[j] = (sq[j] as number) + (x - (center[j] as number)) ** 2;
    }
  }
  // Floors: a channel that was constant during the baseline (a setpoint, a quantised sensor at rest)
  // must not make any later jitter infinitely abnormal. Level-type features get a floor relative to the
  // metric's level; presence (a share) gets an absolute 0.05 (one reading in twenty missing).
  const levelOf = new Map<string, number>();
  keys.forEach((k, j) => {
    const p = parseFeatureKey(k);
    if (p && p.feature === 'mean') levelOf.set(p.metric, Math.abs(center[j] as number));
  });
  const scale = new Array<number>(f);
  for (let j = 0; j < f; j++) {
    const c = counts[j] as number;
    const sd = c > 1 ? Math.sqrt((sq[j] as number) / (c - 1)) : 0;
    const p = parseFeatureKey(keys[j] as string);
    let floor: number;
    if (p?.feature === 'presence') floor = 0.05;
    else {
      const level = (p && levelOf.get(p.metric)) ?? Math.abs(center[j] as number);
      floor = Math.max(opts.scaleFloorAbs, opts.scaleFloorRel * level, opts.scaleFloorRel * Math.abs(center[j] as number));
    }
    if (floorScale) floor = Math.max(floor, floorScale[j] as number);
    scale[j] = Math.max(sd, floor);
  }
  return { center, scale };
}

function standardizeRows(vectors: readonly Float64Array[], s: Stats): Float64Array[] {
  const f = s.center.length;
  return vectors.map((v) => {
    const z = new Float64Array(f);
    for (let j = 0; j < f; j++) {
      const x = v[j] as number;
      z[j] = Number.isNaN(x) ? 0 : (x - (s.center[j] as number)) / (s.scale[j] as number);
    }
    return z;
  });
}

/** Shrunk correlation precision (Ledoit & Wolf 2004, target I, on standardised rows), divided by F. */
function shrunkPrecision(zs: readonly Float64Array[], f: number, minShrinkage: number): { precision: number[]; shrinkage: number } {
  const n = zs.length;
  const s = new Float64Array(f * f);
  for (const z of zs) {
    for (let i = 0; i < f; i++) {
      const zi = z[i] as number;
      if (zi === 0) continue;
      for (let j = 0; j <= i; j++) s[i * f + j] = (s[i * f + j] as number) + zi * (z[j] as number);
    }
  }
  for (let i = 0; i < f; i++) {
    for (let j = 0; j <= i; j++) {
      const v = (s[i * f + j] as number) / n;
      s[i * f + j] = v;
      s[j * f + i] = v;
    }
  }
  // d2 = ||S - I||_F^2, b2 = (1/n^2) sum_k ||z_k z_k^T - S||_F^2  (both scaled by 1/f as in the paper).
  let d2 = 0;
  for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) d2 += ((s[i * f + j] as number) - (i === j ? 1 : 0)) ** 2;
  let b2 = 0;
  for (const z of zs) {
    for (let i = 0; i < f; i++) {
      for (let j = 0; j < f; j++) b2 += ((z[i] as number) * (z[j] as number) - (s[i * f + j] as number)) ** 2;
    }
  }
  b2 /= n * n;
  const a = Math.min(1, Math.max(minShrinkage, d2 > 0 ? Math.min(b2, d2) / d2 : 1));
  const r = new Float64Array(f * f);
  for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) r[i * f + j] = (1 - a) * (s[i * f + j] as number) + (i === j ? a : 0);
  const inv = invertSpd(r, f);
  return { precision: Array.from(inv, (v) => v / f), shrinkage: a };
}

/** Deterministic k-means (farthest-point initialisation, Lloyd iterations). */
function kmeans(zs: readonly Float64Array[], k: number, iters = 25): number[] {
  const n = zs.length;
  const f = zs[0]?.length ?? 0;
  const dist = (a: Float64Array, b: Float64Array) => {
    let d = 0;
    for (let j = 0; j < f; j++) d += ((a[j] as number) - (b[j] as number)) ** 2;
    return d;
  };
  // First center: the row closest to the overall mean (0 after standardisation).
  let first = 0;
  let best = Infinity;
  const zero = new Float64Array(f);
  zs.forEach((z, i) => {
    const d = dist(z, zero);
    if (d < best) {
      best = d;
      first = i;
    }
  });
  const centers: Float64Array[] = [Float64Array.from(zs[first] as Float64Array)];
  const minD = zs.map((z) => dist(z, centers[0] as Float64Array));
  while (centers.length < k) {
    let far = 0;
    for (let i = 1; i < n; i++) if ((minD[i] as number) > (minD[far] as number)) far = i;
    const c = Float64Array.from(zs[far] as Float64Array);
    centers.push(c);
    zs.forEach((z, i) => {
      minD[i] = Math.min(minD[i] as number, dist(z, c));
    });
  }
  const assign = new Array<number>(n).fill(0);
  for (let it = 0; it < iters; it++) {
    let changed = false;
    zs.forEach((z, i) => {
      let bi = 0;
      let bd = Infinity;
      centers.forEach((c, ci) => {
        const d = dist(z, c);
        if (d < bd) {
          bd = d;
          bi = ci;
        }
      });
      if (assign[i] !== bi) {
        assign[i] = bi;
        changed = true;
      }
    });
    const sums = centers.map(() => new Float64Array(f));
    const counts = new Array<number>(k).fill(0);
    zs.forEach((z, i) => {
      const a = assign[i] as number;
      counts[a] = (counts[a] as number) + 1;
      const s = sums[a] as Float64Array;
      for (let j = 0; j < f; j++) s[j] = (s[j] as number) + (z[j] as number);
    });
    centers.forEach((c, ci) => {
      const cnt = counts[ci] as number;
      if (cnt > 0) for (let j = 0; j < f; j++) c[j] = ((sums[ci] as Float64Array)[j] as number) / cnt;
    });
    if (!changed && it > 0) break;
  }
  return assign;
}

/**
 * Full-covariance Gaussian BIC of a clustering in standardised space (lower is better). Full covariance
 * matters: with a diagonal model, correlated continuous variation (load) looks multimodal and would be
 * cut into slices, each of which forgets the relationship between channels that we want to watch.
 * Covariances get a small ridge (0.01) so constant features do not make the likelihood infinite.
 */
function bic(zs: readonly Float64Array[], assign: readonly number[], k: number): number {
  const f = zs[0]?.length ?? 0;
  let ll = 0;
  for (let c = 0; c < k; c++) {
    const rows = zs.filter((_, i) => assign[i] === c);
    const n = rows.length;
    if (n === 0) continue;
    const mean = new Float64Array(f);
    for (const r of rows) for (let j = 0; j < f; j++) mean[j] = (mean[j] as number) + (r[j] as number) / n;
    const cov = new Float64Array(f * f);
    const d = new Float64Array(f);
    for (const r of rows) {
      for (let j = 0; j < f; j++) d[j] = (r[j] as number) - (mean[j] as number);
      for (let i = 0; i < f; i++) {
        const di = d[i] as number;
        if (di === 0) continue;
        for (let j = 0; j <= i; j++) cov[i * f + j] = (cov[i * f + j] as number) + di * (d[j] as number);
      }
    }
    for (let i = 0; i < f; i++) {
      for (let j = 0; j <= i; j++) {
        const v = (cov[i * f + j] as number) / n + (i === j ? 0.01 : 0);
        cov[i * f + j] = v;
        cov[j * f + i] = v;
      }
    }
    // Sum of Mahalanobis terms = n * trace(S^-1 S_hat) = n * (f - ridge * trace(S^-1)) exactly.
    const inv = invertSpd(cov, f);
    let trInv = 0;
    for (let i = 0; i < f; i++) trInv += inv[i * f + i] as number;
    const maha = n * (f - 0.01 * trInv);
    ll += -0.5 * (n * (f * Math.log(2 * Math.PI) + logDetSpd(cov, f)) + maha);
    ll += n * Math.log(n / zs.length);
  }
  const p = k * (f + (f * (f + 1)) / 2) + (k - 1);
  return -2 * ll + p * Math.log(zs.length);
}

/** Cluster baseline windows into operating modes; returns the mode index of every row. */
export function findModes(zs: readonly Float64Array[], maxModes: number, minModeWindows: number): { assign: number[]; k: number } {
  let bestAssign = new Array<number>(zs.length).fill(0);
  let bestK = 1;
  let bestBic = bic(zs, bestAssign, 1);
  for (let k = 2; k <= maxModes; k++) {
    if (zs.length < k * minModeWindows) break;
    const assign = kmeans(zs, k);
    const counts = new Array<number>(k).fill(0);
    for (const a of assign) counts[a] = (counts[a] as number) + 1;
    if (counts.some((c) => c < minModeWindows)) continue;
    const b = bic(zs, assign, k);
    if (b < bestBic) {
      bestBic = b;
      bestAssign = assign;
      bestK = k;
    }
  }
  return { assign: bestAssign, k: bestK };
}

/** Fit the baseline model on baseline vectors (NaN = missing). */
export function fitParams(vectors: readonly Float64Array[], keys: readonly string[], opts: FitOptions): ModelParams {
  const f = keys.length;
  const n = vectors.length;
  if (n < 2) throw new Error(`a baseline needs at least 2 windows, got ${n}`);
  if (f === 0) throw new Error('a baseline needs at least one feature');
  const global = columnStats(vectors, keys, opts);
  const zs = standardizeRows(vectors, global);
  const { assign, k } = findModes(zs, opts.maxModes, opts.minModeWindows);
  // A mode's scale is at least 2% of the machine's overall scale: a mode in which a channel sat still
  // (off, quantised at 0) must not turn the smallest jitter into an alert.
  const modeFloor = global.scale.map((s) => 0.02 * s);
  const modes: ModeParams[] = [];
  for (let c = 0; c < k; c++) {
    const rows = vectors.filter((_, i) => assign[i] === c);
    const st = k === 1 ? global : columnStats(rows, keys, opts, modeFloor);
    const { precision } = shrunkPrecision(k === 1 ? zs : standardizeRows(rows, st), f, opts.minShrinkage);
    modes.push({ center: st.center, scale: st.scale, precision, windows: rows.length });
  }
  return { featureKeys: [...keys], center: global.center, scale: global.scale, modes };
}

/**
 * Folds for out-of-sample calibration scores: blocks of `block` consecutive windows dealt round-robin
 * to k folds, so every fold sees every operating mode of the baseline (contiguous folds would leave a
 * one-off break out of the training folds and inflate the threshold), while the blocks keep overlapping
 * windows mostly together. Returns the fold index of every row.
 */
export function blockFolds(n: number, k: number, block: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(i / Math.max(1, block)) % Math.max(2, k));
}

/**
 * Float64 reference of the built-in scorer graph (mirrors models/src/graph.ts node for node).
 * `resid` is the selected mode's conditional residual of every feature given the others, in conditional
 * standard deviations: (P z)_i / sqrt(P_ii) with P the undivided precision, i.e.
 * sqrt(F) (P' z)_i / sqrt(P'_ii) for the stored P' = P / F; 0 for a missing feature.
 */
export function referenceScore(x: Float64Array, p: ModelParams, zClip: number): { score: number; contrib: Float64Array; mode: number; resid: Float64Array } {
  const f = p.featureKeys.length;
  let best = { score: Infinity, contrib: new Float64Array(f), mode: 0, resid: new Float64Array(f) };
  p.modes.forEach((m, mi) => {
    const z = standardizeWith(x, m.center, m.scale, zClip);
    const contrib = new Float64Array(f);
    const resid = new Float64Array(f);
    let score = 0;
    for (let i = 0; i < f; i++) {
      let pz = 0;
      for (let j = 0; j < f; j++) pz += (z[j] as number) * (m.precision[j * f + i] as number);
      const c = (z[i] as number) * pz;
      contrib[i] = c;
      score += c;
      const d = m.precision[i * f + i] as number;
      resid[i] = Number.isNaN(x[i] as number) ? 0 : (Math.sqrt(f) * pz) / Math.sqrt(Math.max(d, 1e-30));
    }
    if (score < best.score) best = { score, contrib, mode: mi, resid };
  });
  return best;
}

/** z = clip((x - center) / scale); a missing value (NaN) is imputed at the center (z = 0). */
export function standardizeWith(x: Float64Array, center: readonly number[], scale: readonly number[], zClip: number): Float64Array {
  const f = center.length;
  const z = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    const v = x[j] as number;
    if (Number.isNaN(v)) continue;
    const zz = (v - (center[j] as number)) / (scale[j] as number);
    z[j] = Math.max(-zClip, Math.min(zClip, zz));
  }
  return z;
}
