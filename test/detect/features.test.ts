import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MetricAccumulator } from '../../gateway/src/detect/features.js';

describe('window features', () => {
  it('match hand-computed values', () => {
    // x = 2, 4, 4, 4, 5, 5, 7, 9 at t = 0..7 s: the textbook example, mean 5, population sd 2.
    const xs = [2, 4, 4, 4, 5, 5, 7, 9];
    const acc = new MetricAccumulator();
    xs.forEach((x, t) => acc.add(t, x));
    const f = acc.values(10);
    expect(f.mean).toBeCloseTo(5, 12);
    expect(f.std).toBeCloseTo(2, 12);
    expect(f.min).toBe(2);
    expect(f.max).toBe(9);
    // rms = sqrt(mean(x^2)) = sqrt(232 / 8) = sqrt(29)
    expect(f.rms).toBeCloseTo(Math.sqrt(29), 12);
    // crest = max|x| / rms
    expect(f.crest).toBeCloseTo(9 / Math.sqrt(29), 12);
    // slope: sum((t - 3.5)(x - 5)) / sum((t - 3.5)^2) = (10.5+2.5+1.5+0.5+0+0+5+14) / 42 = 34 / 42
    expect(f.slope).toBeCloseTo(34 / 42, 12);
    // excess kurtosis: m4 / m2^2 - 3, m2 = 4, m4 = (81+1+1+1+0+0+16+256)/8 = 44.5
    expect(f.kurtosis).toBeCloseTo(44.5 / 16 - 3, 12);
    expect(f.presence).toBe(0.8);
  });

  it('give zeros for a constant window, not NaN', () => {
    const acc = new MetricAccumulator();
    for (let t = 0; t < 5; t++) acc.add(t, 1500);
    const f = acc.values(5);
    expect(f).toMatchObject({ mean: 1500, std: 0, kurtosis: 0, slope: 0, min: 1500, max: 1500 });
    expect(f.crest).toBeCloseTo(1, 12);
  });

  it('keep precision on a large offset', () => {
    const acc = new MetricAccumulator();
    for (let t = 0; t < 100; t++) acc.add(t, 1e9 + (t % 2));
    expect(acc.values(100).std).toBeCloseTo(0.5, 6);
  });

  it('are independent of arrival order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 59 }), fc.double({ min: -1e3, max: 1e3, noNaN: true })), { minLength: 2, maxLength: 40 }), (pts) => {
        const a = new MetricAccumulator();
        const b = new MetricAccumulator();
        for (const [t, x] of pts) a.add(t, x);
        for (const [t, x] of [...pts].reverse()) b.add(t, x);
        const fa = a.values(pts.length);
        const fb = b.values(pts.length);
        for (const k of ['mean', 'std', 'min', 'max', 'rms', 'slope'] as const) {
          expect(Math.abs(fa[k] - fb[k])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(fa[k])));
        }
      }),
    );
  });
});
