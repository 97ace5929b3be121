/**
 * Rare baseline states ("seen before"). The threshold is a quantile of the machine's out-of-sample
 * baseline scores, so by construction about 0.5 % of a healthy baseline lies above it. Scattered windows
 * there do not matter (k-of-n needs a run of them), but a state the machine holds for an hour once a
 * week (a three-shift pump's Monday cold start, its Saturday stop: the temperatures lag the load) is a
 * run: in the baseline it would have opened an alert, and every week after it does. Raising the
 * quantile for every window to cover it costs detection (models/README.md).
 *
 * Instead the baseline keeps the windows of its own would-be alerts: runs where k of n consecutive
 * out-of-sample scores are above the threshold. Each such window becomes an exemplar in the machine's
 * overall standardised feature space with a radius: twice the distance to its nearest other exemplar
 * that does not overlap it in time (a next point of the same slow trajectory). A later window above the
 * threshold that lies within an exemplar's radius is a state the baseline held; its window score is
 * brought down to `threshold x d^2 / r^2` (below the threshold inside the radius, continuous at its edge).
 *
 * Isolated exemplars are not kept: a window whose nearest non-overlapping exemplar is not within the same
 * run has no trajectory around it, and its radius would be the distance to something unrelated (a
 * one-off spike in the baseline must not excuse a later fault that happens to lie in its direction).
 * Drift and recurrence statistics are not affected: they watch sustained shifts and repeats, which a
 * weekly transient is not.
 */
import { standardizeWith, type ModelParams } from './baseline.js';

export interface RareStates {
  /** Exemplars, each F values of the overall-standardised (and clipped) features. */
  z: number[][];
  /** Squared radius of each exemplar, in the units of `distance2`. */
  r2: number[];
}

/**
 * An exemplar's radius, in units of the distance to its nearest neighbour in the same run. That distance
 * is between two samples of one pass through the states; a later pass (next week's start-up) is sampled
 * at other moments, with its own noise and weather, so it lies further from the nearest exemplar: on
 * seed 1's healthy pump the next Monday's start-up windows were 1.1 to 1.8 neighbour distances away.
 */
const RADIUS_FACTOR = 2;

/** Mean squared difference per feature between two standardised vectors. */
function distance2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const f = a.length;
  let d = 0;
  for (let j = 0; j < f; j++) d += ((a[j] as number) - (b[j] as number)) ** 2;
  return d / Math.max(1, f);
}

/**
 * Indexes (in time order) of the windows above the threshold that lie in a run of `n` consecutive windows
 * holding at least `k` above: the windows that would have opened an alert in the baseline itself.
 */
export function episodeWindows(scores: readonly number[], threshold: number, k: number, n: number): number[] {
  const len = scores.length;
  const prefix = new Int32Array(len + 1);
  for (let i = 0; i < len; i++) prefix[i + 1] = (prefix[i] as number) + ((scores[i] as number) > threshold ? 1 : 0);
  const out: number[] = [];
  for (let i = 0; i < len; i++) {
    if (!((scores[i] as number) > threshold)) continue;
    // Some span [s, s + n) holding i has k above.
    for (let s = Math.max(0, i - n + 1); s <= Math.min(i, Math.max(0, len - n)); s++) {
      if ((prefix[Math.min(len, s + n)] as number) - (prefix[s] as number) >= k) {
        out.push(i);
        break;
      }
    }
  }
  return out;
}

/**
 * Exemplars from the baseline's own would-be alerts. `vectors` and `scores` in time order (a score NaN
 * when a window has none); `overlap` = windows that share readings with a window (windowMs / hopMs,
 * rounded up): exemplars closer than that in the series are not each other's neighbours. At most `max`
 * exemplars (evenly spaced through the candidates); undefined when the baseline has no such run.
 */
export function calibrateRare(
  vectors: readonly Float64Array[],
  scores: readonly number[],
  threshold: number,
  params: Pick<ModelParams, 'center' | 'scale'>,
  o: { zClip: number; k: number; n: number; overlap: number; max: number },
): RareStates | undefined {
  if (o.max <= 0) return undefined;
  const all = episodeWindows(scores, threshold, o.k, o.n);
  if (all.length < 2) return undefined;
  const step = all.length / Math.min(o.max, all.length);
  const idx = Array.from({ length: Math.min(o.max, all.length) }, (_, i) => all[Math.floor(i * step)] as number);
  const zs = idx.map((i) => standardizeWith(vectors[i] as Float64Array, params.center, params.scale, o.zClip));
  const z: number[][] = [];
  const r2: number[] = [];
  idx.forEach((i, a) => {
    let best = Infinity;
    let bestAt = -1;
    idx.forEach((j, b) => {
      if (Math.abs(i - j) < o.overlap) return;
      const d = distance2(zs[a] as Float64Array, zs[b] as Float64Array);
      if (d < best) {
        best = d;
        bestAt = j;
      }
    });
    // The neighbour must be of the same run: no episode window between them is missing for longer than
    // the k-of-n span (otherwise it is another episode, and the exemplar is isolated in its own).
    if (bestAt < 0 || !Number.isFinite(best) || best <= 0) return;
    if (!sameRun(all, i, bestAt, o.n)) return;
    z.push(Array.from(zs[a] as Float64Array));
    r2.push(RADIUS_FACTOR ** 2 * best);
  });
  return z.length > 0 ? { z, r2 } : undefined;
}

/** True when the sorted candidate indexes between `i` and `j` never leave a gap of more than `n` windows. */
function sameRun(sorted: readonly number[], i: number, j: number, n: number): boolean {
  const lo = Math.min(i, j);
  const hi = Math.max(i, j);
  let prev = lo;
  for (const x of sorted) {
    if (x <= lo) continue;
    if (x > hi) break;
    if (x - prev > n) return false;
    prev = x;
  }
  return hi - prev <= n;
}

/**
 * Smallest d^2 / r^2 over the exemplars for a window's raw features `x` (1 = on the edge of the nearest
 * exemplar's radius, below 1 = inside); Infinity without exemplars.
 */
export function rareRatio(x: Float64Array, rare: RareStates, params: Pick<ModelParams, 'center' | 'scale'>, zClip: number): number {
  const z = standardizeWith(x, params.center, params.scale, zClip);
  let best = Infinity;
  rare.z.forEach((e, i) => {
    const r = distance2(z, e) / (rare.r2[i] as number);
    if (r < best) best = r;
  });
  return best;
}
