import { describe, expect, it } from 'vitest';
import { calibrateThreshold, initialPolicyState, stepPolicy, type PolicyOptions } from '../../gateway/src/detect/policy.js';

const opts: PolicyOptions = { k: 3, n: 5, clearRatio: 0.8, clearWindows: 3, criticalRatio: 4, updateRatio: 1.5 };

function run(scores: number[], threshold = 2) {
  const st = initialPolicyState();
  return scores.map((s, i) => stepPolicy(st, opts, s, threshold, (i + 1) * 1000));
}

describe('threshold calibration', () => {
  it('is the q-quantile of the baseline scores times the margin, with a floor', () => {
    const scores = Array.from({ length: 101 }, (_, i) => i / 10); // 0.0 .. 10.0
    expect(calibrateThreshold(scores, { quantile: 0.99, margin: 1.5, minThreshold: 0 }).threshold).toBeCloseTo(9.9 * 1.5, 9);
    expect(calibrateThreshold(scores, { quantile: 0.5, margin: 1, minThreshold: 0 }).threshold).toBeCloseTo(5, 9);
    // interpolation between order statistics (type 7)
    expect(calibrateThreshold([1, 2], { quantile: 0.25, margin: 1, minThreshold: 0 }).threshold).toBeCloseTo(1.25, 9);
    expect(calibrateThreshold([0.1, 0.2], { quantile: 0.99, margin: 1.5, minThreshold: 2 }).threshold).toBe(2);
    expect(calibrateThreshold([NaN, 1, Infinity], { quantile: 1, margin: 1, minThreshold: 0 }).threshold).toBe(1);
  });
});

describe('k-of-n opening and hysteresis', () => {
  it('a single noisy window never opens; k of the last n do', () => {
    const d = run([5, 1, 1, 1, 1, 5, 1, 1, 1, 1]);
    expect(d.every((x) => x.type === 'none')).toBe(true);
    const d2 = run([5, 1, 5, 1, 5]);
    expect(d2.map((x) => x.type)).toEqual(['none', 'none', 'none', 'none', 'open']);
    const open = d2[4];
    // the condition started at the first above-threshold window of the run
    expect(open).toMatchObject({ type: 'open', since: 1000, severity: 'warning', aboveCount: 3 });
  });

  it('reports critical severity and updates only on a markedly higher peak', () => {
    const d = run([3, 3, 3, 4.4, 4.6, 6, 9]);
    expect(d[2]).toMatchObject({ type: 'open', severity: 'warning' });
    expect(d[3]?.type).toBe('none'); // 4.4 < 3 x 1.5
    expect(d[4]).toMatchObject({ type: 'update', severity: 'warning' }); // 4.6 > 4.5
    expect(d[5]?.type).toBe('none'); // 6 < 4.6 x 1.5
    expect(d[6]).toMatchObject({ type: 'update', severity: 'critical' }); // 9 >= 2 x 4
  });

  it('updates once when a channel the alert did not name leads an above-threshold window', () => {
    const st = initialPolicyState();
    const step = (score: number, named: string[], i: number) => stepPolicy(st, opts, score, 2, i * 1000, named);
    expect(step(3, ['pump_rpm'], 1).type).toBe('none');
    expect(step(3, ['pump_rpm'], 2).type).toBe('none');
    expect(step(3, ['pump_rpm', 'flow'], 3)).toMatchObject({ type: 'open' });
    expect(step(3, ['flow'], 4).type).toBe('none'); // named at the open already
    expect(step(1.5, ['vibration'], 5).type).toBe('none'); // below the threshold: not a lead worth a message
    expect(step(3, ['vibration', 'pump_rpm'], 6)).toMatchObject({ type: 'update', reason: 'channel', severity: 'warning', since: 1000 });
    expect(step(3, ['pump_rpm'], 7).type).toBe('none');
    expect(step(3, ['vibration'], 8).type).toBe('none'); // each channel once: no ping-pong between two
    expect(step(5, ['pump_rpm'], 9)).toMatchObject({ type: 'update', reason: 'peak' });
    expect(step(9, ['pump_rpm'], 10)).toMatchObject({ type: 'update', reason: 'severity', severity: 'critical' });
  });

  it('clears only after clearWindows consecutive windows below threshold x clearRatio', () => {
    // open, then hovering just under the threshold (1.9 > 2 * 0.8) never clears
    const d = run([3, 3, 3, 1.9, 1.9, 1.9, 1.9, 1.9]);
    expect(d.filter((x) => x.type === 'clear')).toHaveLength(0);
    const d2 = run([3, 3, 3, 1, 1, 3, 1, 1, 1]);
    expect(d2.map((x) => x.type)).toEqual(['none', 'none', 'open', 'none', 'none', 'none', 'none', 'none', 'clear']);
    expect(d2[8]).toMatchObject({ type: 'clear', at: 9000 });
  });
});
