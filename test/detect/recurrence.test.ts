import { describe, expect, it } from 'vitest';
import { allowedSlots, binomialUpperTail, calibrateRecurrence, initialRecurrenceState, recurrenceValue, updateRecurrence } from '../../gateway/src/detect/recurrence.js';

const MIN = 60_000;
// 6 slots of 10 min; the local level moves by lambda 0.5 per window, each step clipped to +-3
const cal = { level: 5, horizonMs: 60 * MIN, slots: 6, lambda: 0.5, clip: 3 };

describe('recurrence statistic, hand-computed', () => {
  it('binomial upper tail', () => {
    expect(binomialUpperTail(3, 5, 0.5)).toBeCloseTo(0.5, 12);
    // P(X >= 2), X ~ Bin(3, 0.1) = 3 x 0.01 x 0.9 + 0.001
    expect(binomialUpperTail(2, 3, 0.1)).toBeCloseTo(0.028, 12);
    expect(binomialUpperTail(0, 3, 0.1)).toBe(1);
    expect(binomialUpperTail(4, 3, 0.1)).toBe(0);
    // far tail stays accurate: P(X >= 5), X ~ Bin(5, 1e-4) = 1e-20
    expect(binomialUpperTail(5, 5, 1e-4) / 1e-20).toBeCloseTo(1, 9);
  });

  it('allowed hit slots: the smallest count whose expected false crossings per week fit the budget', () => {
    // p 0.1, 6 slots, 1008 slots a week: a = 1 -> 1008 x 0.1 x P(Bin(5, 0.1) >= 1) = 100.8 x 0.40951 = 41.3;
    // a = 2 -> 100.8 x 0.08146 = 8.2; a = 3 -> 100.8 x 0.00856 = 0.863; a = 4 -> 100.8 x 0.00046 = 0.0464
    expect(allowedSlots(0.1, 6, 1008, 1)).toBe(3);
    expect(allowedSlots(0.1, 6, 1008, 0.05)).toBe(4);
    expect(allowedSlots(0.1, 6, 1008, 0.01)).toBe(5);
    // a feature whose slots are nearly always hit in the baseline: allowed = S, it can never alarm
    expect(allowedSlots(0.9, 6, 1008, 1e-9)).toBe(6);
  });

  it('counts a slot once however many far-out windows it holds, forgets slots that left the horizon', () => {
    const st = initialRecurrenceState(2);
    const w = (minute: number, r: [number, number]) => updateRecurrence(st, r, minute * MIN, cal);
    w(1, [9, 0]); // slot 0
    w(2, [9, 0]); // still slot 0: not counted again (the level moved 3 towards it: 9 - 3 = 6 > 5 is far, same slot)
    w(3, [0, 0]);
    w(12, [-9, 0]); // slot 1, either direction
    expect(st.hit).toEqual([[0, 1], []]);
    const v = recurrenceValue(st, { ...cal, p: [0.05, 0.05], allowed: [1, 1], hits: [0, 0], baselineSlots: 144 });
    expect(v).toMatchObject({ feature: 0, count: 2 });
    expect(v.value).toBeCloseTo(2 / 1.5, 12);
    expect(v.expected).toBeCloseTo(0.3, 12);
    w(61, [0, 0]); // slot 6: slot 0 has left the last 6 slots (1..6)
    expect(st.hit[0]).toEqual([1]);
    w(75, [0, 0]); // slot 7
    expect(st.hit[0]).toEqual([]);
  });

  it('measures far out from the recent level, so a channel that sits off is not a recurring event', () => {
    const st = initialRecurrenceState(1);
    // a sustained level of 8 sd: far at first, then the level catches up (steps of at most 3 x 0.5)
    for (let m = 0; m < 60; m++) updateRecurrence(st, [8 + (m % 2 ? 0.5 : -0.5)], m * MIN, cal);
    expect(st.local[0]).toBeGreaterThan(7);
    const early = (st.hit[0] as number[]).length;
    expect(early).toBe(1); // only while the level was catching up, in the first slot
    // one spike on top of that level moves it by at most lambda x clip
    const before = st.local[0] as number;
    updateRecurrence(st, [30], 60 * MIN, cal);
    expect((st.local[0] as number) - before).toBeCloseTo(1.5, 12);
    expect(st.hit[0]).toEqual([6]);
  });

  it('calibrates the slot rate (Laplace) and never allows less than the baseline itself held', () => {
    // 24 h of 30 s windows, two features: feature 0 far out in 3 windows in 2 slots; feature 1 a burst of
    // far-out windows in 4 consecutive slots (a start-up the baseline saw).
    const hop = 30_000;
    const n = 2880;
    const series = Array.from({ length: n }, () => [0, 0]);
    (series[100] as number[])[0] = 9;
    (series[101] as number[])[0] = 9; // same slot as 100 (10-min slots hold 20 windows)
    (series[500] as number[])[0] = -9;
    for (const t of [1000, 1020, 1040, 1060]) (series[t] as number[])[1] = 9;
    const c = calibrateRecurrence(series, 2, { ...cal, hopMs: hop, budget: 0.1 });
    expect(c.baselineSlots).toBe(144);
    expect(c.hits).toEqual([2, 4]);
    expect(c.p[0]).toBeCloseTo(3 / 145, 12);
    expect(c.p[1]).toBeCloseTo(5 / 145, 12);
    expect(c.allowed[0]).toBe(allowedSlots(3 / 145, 6, 1008, 0.05));
    expect(c.allowed[1]).toBeGreaterThanOrEqual(4);
    expect(c.allowed[1]).toBe(Math.max(4, allowedSlots(5 / 145, 6, 1008, 0.05)));
  });
});
