import { describe, expect, it } from 'vitest';
import { referenceScore, type ModelParams } from '../../gateway/src/detect/baseline.js';
import { calibrateDrift, decayDrift, driftLambda, driftValue, iidSigma, initialDriftState, updateDrift } from '../../gateway/src/detect/drift.js';
import { builtinManifestPath, ScoringModel } from '../../gateway/src/detect/model.js';

describe('drift statistic (EWMA of residuals), hand-computed', () => {
  it('lambda from the time constant and the EWMA spread of independent N(0,1) values', () => {
    expect(driftLambda(30_000, 1_800_000)).toBeCloseTo(1 - Math.exp(-1 / 60), 12);
    // a time constant shorter than one hop means "no memory beyond this window's weight 1 - e^-1"
    expect(driftLambda(30_000, 10_000)).toBeCloseTo(1 - Math.exp(-1), 12);
    expect(iidSigma(0.5)).toBeCloseTo(Math.sqrt(0.5 / 1.5), 12);
  });

  it('updates with clipped residuals and reports the feature furthest out in units of its spread', () => {
    const st = initialDriftState(2);
    updateDrift(st, [2, -10], 0.5, 3); // -10 clipped to -3
    expect(Array.from(st.e)).toEqual([1, -1.5]);
    updateDrift(st, [2, Number.NaN], 0.5, 3); // a missing residual counts as 0
    expect(Array.from(st.e)).toEqual([1.5, -0.75]);
    const d = driftValue(st, [0.5, 1]);
    expect(d.value).toBeCloseTo(3, 12);
    expect(d.feature).toBe(0);
    expect(d.ewma).toBeCloseTo(1.5, 12);
    // a feature with sigma 0 (none calibrated) is ignored
    expect(driftValue(st, [0, 0.25]).feature).toBe(1);
    expect(driftValue(st, [0, 0.25]).value).toBeCloseTo(3, 12);
  });

  it('decays by one step per missed window, as if each had residual 0', () => {
    const a = initialDriftState(2);
    const b = initialDriftState(2);
    updateDrift(a, [2, -1], 0.25, 3);
    updateDrift(b, [2, -1], 0.25, 3);
    decayDrift(a, 3, 0.25);
    for (let i = 0; i < 3; i++) updateDrift(b, [0, 0], 0.25, 3);
    expect(a.e[0]).toBeCloseTo(b.e[0] as number, 12);
    expect(a.e[1]).toBeCloseTo(b.e[1] as number, 12);
    expect(a.e[0]).toBeCloseTo(0.5 * 0.75 ** 3, 12);
    decayDrift(a, 0, 0.25); // no gap: unchanged
    expect(a.e[0]).toBeCloseTo(0.5 * 0.75 ** 3, 12);
  });

  it('calibrates sigma as the RMS of the EWMA over the baseline, floored at the iid value', () => {
    // EWMA (lambda 0.5) of 3, 3, 3 from 0: 1.5, 2.25, 2.625; RMS = sqrt((2.25 + 5.0625 + 6.890625) / 3)
    const c = calibrateDrift([[3], [3], [3]], 1, 0.5, 3);
    expect(c.sigma[0]).toBeCloseTo(Math.sqrt(14.203125 / 3), 12);
    expect(c.baselineMax).toBeCloseTo(2.625 / Math.sqrt(14.203125 / 3), 12);
    // 1, 1, -1: EWMA 0.5, 0.75, -0.125, RMS 0.525 < floor sqrt(0.5 / 1.5) = 0.577
    const f = calibrateDrift([[1], [1], [-1]], 1, 0.5, 3);
    expect(f.sigma[0]).toBeCloseTo(Math.sqrt(1 / 3), 12);
    // overlapping windows (window 2 x hop): the floor is sqrt(2) times higher
    expect(calibrateDrift([[1], [1], [-1]], 1, 0.5, 3, 2).sigma[0]).toBeCloseTo(Math.sqrt(2 / 3), 12);
    // residuals wider than N(0,1) widen the floor: +-2 alternating, EWMA 1, -0.5, 0.75, -0.625 (RMS 0.742)
    // is below sqrt(1/3) x RMS(resid) = 0.577 x 2
    expect(calibrateDrift([[2], [-2], [2], [-2]], 1, 0.5, 3).sigma[0]).toBeCloseTo(2 * Math.sqrt(1 / 3), 12);
    // clip applies during calibration too: 10 counts as 3
    expect(calibrateDrift([[10], [10], [10]], 1, 0.5, 3).sigma[0]).toBeCloseTo(Math.sqrt(14.203125 / 3), 12);
  });

  it('leaves the EWMA warm-up out of the spread when the baseline is long enough', () => {
    // lambda 0.5: warm-up ceil(2 / 0.5) = 4 windows; 24 windows of 2 after 4 windows of 0 -> EWMA 1, 1.5, 1.75, ...
    const series = [...Array.from({ length: 4 }, () => [0]), ...Array.from({ length: 24 }, () => [2])];
    const c = calibrateDrift(series, 1, 0.5, 3);
    let e = 0;
    let sq = 0;
    series.forEach((r, t) => {
      e = 0.5 * e + 0.5 * (r[0] as number);
      if (t >= 4) sq += e * e;
    });
    expect(c.sigma[0]).toBeCloseTo(Math.sqrt(sq / 24), 12);
  });
});

describe('conditional residual output of the built-in model', () => {
  it('resid = (P z)_i / sqrt(P_ii) of the selected mode, from onnxruntime and the reference', async () => {
    // F = 2, P = [[2,-1],[-1,2]] (stored divided by F), z = (1, 0): P z = (2, -1), resid = (2/sqrt 2, -1/sqrt 2)
    const params: ModelParams = {
      featureKeys: ['a:mean', 'b:mean'],
      center: [0, 0],
      scale: [1, 1],
      modes: [{ center: [0, 0], scale: [1, 1], precision: [1, -0.5, -0.5, 1], windows: 10 }],
    };
    const x = Float64Array.from([1, 0]);
    const ref = referenceScore(x, params, 10);
    expect(ref.resid[0]).toBeCloseTo(Math.SQRT2, 12);
    expect(ref.resid[1]).toBeCloseTo(-1 / Math.SQRT2, 12);
    expect(ref.score).toBeCloseTo(1, 12); // z^T P' z = 1
    const model = await ScoringModel.load(builtinManifestPath());
    try {
      expect(model.hasResiduals).toBe(true);
      // batched with a 3-feature machine, so the first one is padded: padding must not change its residuals
      const wide: ModelParams = {
        featureKeys: ['a:mean', 'b:mean', 'c:mean'],
        center: [0, 0, 0],
        scale: [1, 1, 1],
        modes: [{ center: [0, 0, 0], scale: [1, 1, 1], precision: [1 / 3, 0, 0, 0, 1 / 3, 0, 0, 0, 1 / 3], windows: 10 }],
      };
      const [r, w, missing] = await model.score([
        { x, params },
        { x: Float64Array.from([0, 2, 0]), params: wide },
        { x: Float64Array.from([1, Number.NaN]), params },
      ]);
      expect(r?.resid?.[0]).toBeCloseTo(Math.SQRT2, 5);
      expect(r?.resid?.[1]).toBeCloseTo(-1 / Math.SQRT2, 5);
      // identity precision: resid = z
      expect(Array.from(w?.resid ?? [])).toEqual([0, expect.closeTo(2, 5), 0]);
      // a missing feature has residual 0
      expect(Math.abs(missing?.resid?.[1] ?? 1)).toBe(0);
      expect(missing?.resid?.[0]).toBeCloseTo(Math.SQRT2, 5);
    } finally {
      await model.close();
    }
  });
});
