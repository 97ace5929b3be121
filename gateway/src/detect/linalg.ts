/** Small dense linear algebra on row-major Float64Arrays (n x n); enough for per-machine baselines. */

/**
 * Inverse of a symmetric positive-definite matrix by Cholesky factorisation (A = L L^T), then
 * A^-1 = L^-T L^-1. Throws if A is not positive definite (callers shrink towards I first).
 */
export function invertSpd(a: Float64Array, n: number): Float64Array {
  const l = cholesky(a, n);
  // Inverse of the lower-triangular L.
  const li = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    li[i * n + i] = 1 / (l[i * n + i] as number);
    for (let j = 0; j < i; j++) {
      let sum = 0;
      for (let k = j; k < i; k++) sum -= (l[i * n + k] as number) * (li[k * n + j] as number);
      li[i * n + j] = sum / (l[i * n + i] as number);
    }
  }
  // A^-1 = L^-T L^-1 (symmetric: fill both halves).
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0;
      for (let k = i; k < n; k++) sum += (li[k * n + i] as number) * (li[k * n + j] as number);
      inv[i * n + j] = sum;
      inv[j * n + i] = sum;
    }
  }
  return inv;
}

/** log det of a symmetric positive-definite matrix (Cholesky); throws if not positive definite. */
export function logDetSpd(a: Float64Array, n: number): number {
  const l = cholesky(a, n);
  let logDet = 0;
  // det A = det(L)^2 = prod(L_ii)^2
  for (let i = 0; i < n; i++) logDet += 2 * Math.log(l[i * n + i] as number);
  return logDet;
}

/** Lower-triangular L with A = L L^T (row-major); throws if A is not positive definite. */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * n + j] as number;
      for (let k = 0; k < j; k++) sum -= (l[i * n + k] as number) * (l[j * n + k] as number);
      if (i === j) {
        if (!(sum > 0)) throw new Error(`matrix is not positive definite (pivot ${i} = ${sum})`);
        l[i * n + i] = Math.sqrt(sum);
      } else {
        l[i * n + j] = sum / (l[j * n + j] as number);
      }
    }
  }
  return l;
}

/** Quantile with linear interpolation between order statistics (type 7, as numpy's default). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const pos = (s.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = s[lo] as number;
  const b = s[hi] as number;
  return a + (b - a) * (pos - lo);
}
