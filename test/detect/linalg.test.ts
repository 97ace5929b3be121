import { describe, expect, it } from 'vitest';
import { cholesky, invertSpd, logDetSpd } from '../../gateway/src/detect/linalg.js';

describe('SPD linear algebra', () => {
  // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, sqrt 2]], det 8, inverse [[3, -2], [-2, 4]] / 8.
  const a = Float64Array.from([4, 2, 2, 3]);
  it('factorises, inverts and takes the log determinant (hand-computed 2x2)', () => {
    const l = cholesky(a, 2);
    expect([...l].map((v) => Number(v.toFixed(12)))).toEqual([2, 0, 1, Number(Math.SQRT2.toFixed(12))]);
    expect([...invertSpd(a, 2)].map((v) => Number(v.toFixed(12)))).toEqual([0.375, -0.25, -0.25, 0.5]);
    expect(logDetSpd(a, 2)).toBeCloseTo(Math.log(8), 12);
  });
  it('refuses a matrix that is not positive definite', () => {
    expect(() => invertSpd(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(/not positive definite/);
    expect(() => logDetSpd(Float64Array.from([0, 0, 0, 1]), 2)).toThrow(/not positive definite/);
  });
});
