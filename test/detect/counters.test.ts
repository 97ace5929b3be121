import { describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { counterFeatures, counterMetrics } from '../../gateway/src/detect/counters.js';
import type { FeatureValues } from '../../gateway/src/detect/features.js';
import { rng } from '../../models/src/train.js';
import { startDetection, T0 } from './helpers.js';

const rowsOf = (series: Record<string, number[]>): Array<Map<string, FeatureValues>> => {
  const n = Math.max(...Object.values(series).map((s) => s.length));
  return Array.from({ length: n }, (_, i) => {
    const row = new Map<string, FeatureValues>();
    for (const [m, s] of Object.entries(series)) {
      const v = s[i];
      if (v !== undefined) row.set(m, { mean: v } as FeatureValues);
    }
    return row;
  });
};

describe('counters (unit)', () => {
  it('finds metrics that only count up, resets allowed; not trends, constants or short series', () => {
    const r = rng(3);
    const parts: number[] = [];
    let p = 0;
    for (let i = 0; i < 400; i++) {
      if (i % 3 === 0) p += 1; // a part every third window, flat in between
      if (i === 200) p = 0; // shift counter reset
      parts.push(p);
    }
    const rows = rowsOf({
      parts,
      kwh: Array.from({ length: 400 }, (_, i) => 1e6 + 0.5 * i), // large level: equality tolerance matters
      temp_rising: Array.from({ length: 400 }, (_, i) => 40 + 0.02 * i + 0.3 * r.normal()), // trends up, but noisy
      setpoint: Array.from({ length: 400 }, () => 1500),
      // raised five times and lowered once: changes too rarely to be a counter
      recipe: Array.from({ length: 400 }, (_, i) => 1000 + 10 * Math.min(5, Math.floor(i / 60)) - (i >= 390 ? 5 : 0)),
      // a machine that ran for a few windows of its baseline: counts up in 3 % of them
      hours: Array.from({ length: 400 }, (_, i) => 7000 + Math.min(12, Math.max(0, i - 100))),
      short: [1, 2, 3, 4, 5],
    });
    expect([...counterMetrics(rows)].sort()).toEqual(['hours', 'kwh', 'parts']);
  });

  it('models a counter by its rate: level features become one slope, the others stay', () => {
    expect(counterFeatures(['mean', 'logstd', 'presence'])).toEqual(['slope', 'presence']);
    expect(counterFeatures(['mean', 'std', 'slope', 'max'])).toEqual(['slope', 'std']);
  });
});

/** Speed and current (related) plus an energy meter counting up with the load; `rate` scales the meter only. */
function machine(seed: number) {
  const r = rng(seed);
  let t = T0;
  let kwh = 500;
  let speed = 1500;
  return (seconds: number, rate = 1): Reading[] =>
    Array.from({ length: seconds }, () => {
      speed = 1500 + 0.9 * (speed - 1500) + 40 * r.normal();
      kwh += rate * (0.004 + 0.0002 * r.normal());
      const rd = { machine: 'press-1', ts: t, metrics: { spindle_speed_rpm: speed, motor_current_a: 0.01 * speed + 0.05 * r.normal(), energy_kwh: kwh } };
      t += 1000;
      return rd;
    });
}

const run = (counters: boolean) => startDetection(null, { baseline: { counters } });

describe('Detection: a machine that publishes a counter', () => {
  it('stays quiet while the counter climbs past its baseline, and alerts when it counts slower', async () => {
    const { det, conds } = await run(true);
    const gen = machine(11);
    det.push(gen(1000));
    await det.flush();
    const b = det.baseline('press-1');
    expect(b).toMatchObject({ phase: 'scoring', counters: ['energy_kwh'] });
    expect(b?.features).toContain('energy_kwh:slope');
    expect(b?.features).not.toContain('energy_kwh:mean');
    expect(b?.features).toContain('motor_current_a:mean');
    // an hour more: the meter reads far above anything in the baseline, at the same rate
    det.push(gen(3600));
    await det.flush();
    expect(conds).toHaveLength(0);
    // the press draws energy at a third of its usual rate while its speed and current look normal
    det.push(gen(300, 0.3));
    await det.flush();
    const open = conds.find((c) => c.active);
    expect(open?.contributors[0]?.metric).toBe('energy_kwh');
    expect(open?.message).toMatch(/energy_kwh rate 0\.0\d+\/min vs baseline 0\.24\/min/);
    await det.close();
  });

  it('without it (baseline.counters false) the same machine alerts on the counter level after its baseline', async () => {
    const { det, conds } = await run(false);
    const gen = machine(11);
    det.push(gen(1000));
    await det.flush();
    expect(det.baseline('press-1')).toMatchObject({ phase: 'scoring', counters: [] });
    det.push(gen(3600));
    await det.flush();
    const open = conds.find((c) => c.active);
    expect(open?.contributors.some((c) => c.metric === 'energy_kwh')).toBe(true);
    await det.close();
  });
});
