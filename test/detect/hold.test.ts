import { describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { CadenceProbe } from '../../gateway/src/detect/cadence.js';
import { HoldExpander } from '../../gateway/src/detect/hold.js';
import { rng } from '../../models/src/train.js';
import { startDetection, T0 } from './helpers.js';

describe('report by exception (unit)', () => {
  it('completes readings with held values, fills gaps every step for at most maxMs, passes late readings as they are', () => {
    const h = new HoldExpander(10_000, 30_000);
    const out: Array<[number, Record<string, number>]> = [];
    const emit = (ts: number, m: Record<string, number>) => out.push([ts - T0, m]);
    h.expand(T0, { a: 1, b: 2 }, emit);
    h.expand(T0 + 5_000, { a: 3 }, emit);
    h.expand(T0 + 25_000, { b: 4 }, emit); // fills at 15 s
    h.expand(T0 + 100_000, { a: 5 }, emit); // fills at 35 and 45 s: at most 30 s after the last real reading
    h.expand(T0 + 50_000, { a: 9 }, emit); // late
    expect(out).toEqual([
      [0, { a: 1, b: 2 }],
      [5_000, { a: 3, b: 2 }],
      [15_000, { a: 3, b: 2 }],
      [25_000, { a: 3, b: 4 }],
      [35_000, { a: 3, b: 4 }],
      [45_000, { a: 3, b: 4 }],
      [100_000, { a: 5, b: 4 }],
      [50_000, { a: 9 }],
    ]);
  });

  it('tells a machine reporting by exception from a periodic one, also one that sends a message per metric', () => {
    const probe = (readings: Array<[number, Record<string, number>]>) => {
      const p = new CadenceProbe();
      for (const [ts, metrics] of readings) p.add({ machine: 'm', ts, metrics });
      return p.partial();
    };
    const times = Array.from({ length: 9 }, (_, i) => T0 + i * 1000);
    expect(probe(times.map((t) => [t, { a: 1, b: 2, c: 3 }]))).toBe(false);
    expect(probe(times.flatMap((t) => [[t, { a: 1 }], [t, { b: 2 }], [t, { c: 3 }]] as Array<[number, Record<string, number>]>))).toBe(false);
    // one channel missing now and then (a loose sensor) is not report by exception
    const m = (x: Record<string, number>) => x;
    expect(probe(times.map((t, i) => [t, i % 3 === 0 ? m({ a: 1, b: 2 }) : m({ a: 1, b: 2, c: 3 })]))).toBe(false);
    expect(probe(times.map((t, i) => [t, i % 3 === 0 ? m({ a: 1, c: 3 }) : m({ a: 1 })]))).toBe(true);
  });
});

/**
 * Speed and current change every second and are always sent; the bearing temperature is sent only when it
 * moved by 0.5 °C since it was last sent (a deadband), so a steady temperature is almost never in a reading.
 */
function rbeMachine(seed: number) {
  const r = rng(seed);
  let t = T0;
  let speed = 1500;
  let temp = 40;
  let sentTemp = -Infinity;
  return (seconds: number, heating = 0): Reading[] =>
    Array.from({ length: seconds }, () => {
      speed = 1500 + 0.9 * (speed - 1500) + 40 * r.normal();
      temp += heating;
      const tempNow = temp + 0.05 * r.normal();
      const metrics: Record<string, number> = { spindle_speed_rpm: speed, motor_current_a: 0.01 * speed + 0.05 * r.normal() };
      if (Math.abs(tempNow - sentTemp) >= 0.5) metrics.bearing_temp_c = sentTemp = tempNow;
      const rd = { machine: 'rbe-1', ts: t, metrics };
      t += 1000;
      return rd;
    });
}

const run = (holdValues: boolean) => startDetection(null, { holdValues });

describe('Detection: a machine that reports by exception', () => {
  it('models its steady channel from held values and alerts when that channel moves', async () => {
    const { det, conds } = await run(true);
    const gen = rbeMachine(5);
    det.push(gen(1000));
    await det.flush();
    const b = det.baseline('rbe-1');
    expect(b).toMatchObject({ phase: 'scoring', reportByException: true, windowMs: 10_000 });
    expect(b?.metrics).toEqual(['bearing_temp_c', 'motor_current_a', 'spindle_speed_rpm']);
    det.push(gen(600));
    await det.flush();
    expect(conds).toHaveLength(0);
    // the bearing warms by 0.01 °C/s: a report every ~50 s
    det.push(gen(300, 0.01));
    await det.flush();
    const open = conds.find((c) => c.active);
    expect(open?.contributors[0]?.metric).toBe('bearing_temp_c');
    await det.close();
  });

  it('without it (holdValues false) the steady channel is left out of the model and its warming goes unseen', async () => {
    const { det, conds } = await run(false);
    const gen = rbeMachine(5);
    det.push(gen(1000));
    await det.flush();
    const b = det.baseline('rbe-1');
    expect(b).toMatchObject({ phase: 'scoring', reportByException: false });
    expect(b?.metrics).toEqual(['motor_current_a', 'spindle_speed_rpm']);
    det.push(gen(900, 0.01));
    await det.flush();
    expect(conds.filter((c) => c.active && c.contributors.some((x) => x.metric === 'bearing_temp_c'))).toEqual([]);
    await det.close();
  });
});
