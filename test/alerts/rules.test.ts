import { afterEach, describe, expect, it } from 'vitest';
import { limitRuleSchema, alertsConfigSchema } from '../../gateway/src/alerts/config.js';
import { LimitRules, SilenceRule } from '../../gateway/src/alerts/rules.js';
import type { ConditionEvent } from '../../gateway/src/contract/detection.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { startAlerts, T0, type Harness } from './helpers.js';

const rule = (r: Record<string, unknown>) => limitRuleSchema.parse(r);
const reading = (machine: string, ts: number, metrics: Record<string, number>): Reading => ({ machine, ts, metrics });

function limits(rules: Array<Record<string, unknown>>, kinds: Record<string, string> = {}) {
  const out: ConditionEvent[] = [];
  const l = new LimitRules(rules.map(rule), (m) => kinds[m], (e) => out.push(e));
  return { l, out };
}

describe('limit rules', () => {
  it('opens only after the violation lasted forMs (event time), starting at the first violating reading', () => {
    const { l, out } = limits([{ machine: 'm1', metric: 'temp_c', max: 80, forMs: 60_000, severity: 'critical' }]);
    l.onReadings([reading('m1', T0, { temp_c: 85 }), reading('m1', T0 + 30_000, { temp_c: 90 })]);
    expect(out).toHaveLength(0);
    // Back inside before forMs: the clock restarts.
    l.onReadings([reading('m1', T0 + 40_000, { temp_c: 70 })]);
    l.onReadings([reading('m1', T0 + 50_000, { temp_c: 81 }), reading('m1', T0 + 100_000, { temp_c: 82 })]);
    expect(out).toHaveLength(0);
    l.onReadings([reading('m1', T0 + 110_000, { temp_c: 84 })]);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({
      machine: 'm1',
      kind: 'limit',
      active: true,
      eventTs: T0 + 50_000,
      severity: 'critical',
      score: 84,
      threshold: 80,
    });
    expect(out[0]!.contributors[0]).toMatchObject({ metric: 'temp_c', feature: 'max', value: 84, baseline: 80, text: 'temp_c 84 above max 80' });
    expect(out[0]!.message).toMatch(/^temp_c 84 above max 80 since /);
    l.onReadings([reading('m1', T0 + 120_000, { temp_c: 60 })]);
    expect(out).toHaveLength(2);
    expect(out[1]).toMatchObject({ active: false, eventTs: T0 + 120_000 });
  });

  it('honours the deadband before clearing, and ignores readings older than the last one', () => {
    const { l, out } = limits([{ metric: 'p_bar', min: 2, deadbandAbs: 0.5 }]);
    l.onReadings([reading('m1', T0, { p_bar: 1.5 })]);
    expect(out).toHaveLength(1);
    expect(out[0]!.contributors[0]!.text).toBe('p_bar 1.5 below min 2');
    l.onReadings([reading('m1', T0 + 1000, { p_bar: 2.2 })]); // inside, but within the deadband
    l.onReadings([reading('m1', T0 + 500, { p_bar: 9 })]); // out of order: skipped
    expect(out).toHaveLength(1);
    l.onReadings([reading('m1', T0 + 2000, { p_bar: 2.6 })]);
    expect(out).toHaveLength(2);
    expect(out[1]!.active).toBe(false);
  });

  it('picks machine rules over kind rules over global rules, per metric', () => {
    const { l, out } = limits(
      [
        { metric: 'temp_c', max: 50 },
        { kind: 'cnc', metric: 'temp_c', max: 70 },
        { machine: 'special', metric: 'temp_c', max: 90 },
        { kind: 'cnc', metric: 'spindle_a', max: 10 },
      ],
      { cnc1: 'cnc', special: 'cnc' },
    );
    l.onReadings([reading('other', T0, { temp_c: 60 }), reading('cnc1', T0, { temp_c: 60 }), reading('special', T0, { temp_c: 80 })]);
    expect(out.map((e) => e.machine)).toEqual(['other']);
    l.onReadings([reading('cnc1', T0 + 1, { temp_c: 75 }), reading('special', T0 + 1, { temp_c: 91, spindle_a: 11 })]);
    expect(out.map((e) => e.machine)).toEqual(['other', 'cnc1', 'special']);
    expect(out[1]!.threshold).toBe(70);
    // `special` also got the kind rule for spindle_a (no machine rule for that metric): one condition,
    // two contributors, the one furthest outside its limit (11 vs 10 > 91 vs 90) first.
    const special = out[2]!;
    expect(special.contributors.map((c) => `${c.metric}>${c.baseline}`)).toEqual(['spindle_a>10', 'temp_c>90']);
    expect(special.threshold).toBe(10);
    expect(special.message).toMatch(/^2 limits violated since/);
  });

  it('keeps one limit condition per machine until every violated metric is back', () => {
    const { l, out } = limits([
      { metric: 'a', max: 10, severity: 'warning' },
      { metric: 'b', max: 10, severity: 'critical' },
    ]);
    l.onReadings([reading('m1', T0, { a: 11 })]);
    l.onReadings([reading('m1', T0 + 1000, { b: 12 })]);
    expect(out.map((e) => [e.active, e.severity, e.eventTs])).toEqual([
      [true, 'warning', T0],
      [true, 'critical', T0], // same episode, escalated
    ]);
    // `a` back: still the same episode, now only `b` contributes.
    l.onReadings([reading('m1', T0 + 2000, { a: 5 })]);
    expect(out).toHaveLength(3);
    expect(out[2]).toMatchObject({ active: true, eventTs: T0, severity: 'critical' });
    expect(out[2]!.contributors.map((c) => c.metric)).toEqual(['b']);
    l.onReadings([reading('m1', T0 + 3000, { b: 5 })]);
    expect(out.at(-1)).toMatchObject({ active: false, eventTs: T0 + 3000 });
  });

  it('holds a worse peak back for 5 s (event time), then reports it; a clear inside the window reports it first', () => {
    const { l, out } = limits([{ machine: 'm1', metric: 'oil_temp_c', max: 75, severity: 'critical' }]);
    l.onReadings([reading('m1', T0, { oil_temp_c: 80 })]);
    l.onReadings([reading('m1', T0 + 300, { oil_temp_c: 81 }), reading('m1', T0 + 1000, { oil_temp_c: 83 })]);
    l.onReadings([reading('m1', T0 + 2000, { oil_temp_c: 82 })]);
    // Rate-limited: the worse readings are not passed on inside the window.
    expect(out.map((e) => e.score)).toEqual([80]);
    // Window over, still violating: the worst value of the window goes out once.
    l.onReadings([reading('m1', T0 + 5000, { oil_temp_c: 79 })]);
    expect(out.map((e) => e.score)).toEqual([80, 83]);
    l.onReadings([reading('m1', T0 + 5300, { oil_temp_c: 84 })]);
    expect(out.map((e) => e.score)).toEqual([80, 83]);
    // Cleared 0.7 s after the 84: the held-back peak goes out before the clear.
    l.onReadings([reading('m1', T0 + 6000, { oil_temp_c: 72 })]);
    expect(out.map((e) => [e.active, e.score])).toEqual([
      [true, 80],
      [true, 83],
      [true, 84],
      [false, undefined],
    ]);
    expect(out[2]).toMatchObject({ eventTs: T0, threshold: 75, severity: 'critical' });
    expect(out[2]!.contributors[0]).toMatchObject({ metric: 'oil_temp_c', value: 84, text: 'oil_temp_c 84 above max 75' });
    // A new episode starts without a held-back peak from the old one.
    l.onReadings([reading('m1', T0 + 7000, { oil_temp_c: 76 }), reading('m1', T0 + 7100, { oil_temp_c: 70 })]);
    expect(out.slice(4).map((e) => [e.active, e.score])).toEqual([
      [true, 76],
      [false, undefined],
    ]);
  });

  it('reports a held-back peak before the metric that reached it leaves the condition', () => {
    const { l, out } = limits([
      { metric: 'a', max: 10, severity: 'warning' },
      { metric: 'b', max: 10, severity: 'warning' },
    ]);
    l.onReadings([reading('m1', T0, { a: 11 })]);
    l.onReadings([reading('m1', T0 + 100, { b: 12 })]); // b joins: published (other metrics)
    l.onReadings([reading('m1', T0 + 200, { a: 13 })]); // worse, inside the window: held back
    expect(out).toHaveLength(2);
    l.onReadings([reading('m1', T0 + 300, { a: 5 })]); // a leaves: the update without a must not lose a's 13
    expect(out.map((e) => [e.score, e.threshold, e.contributors.map((c) => c.metric).join('+')])).toEqual([
      [11, 10, 'a'],
      [12, 10, 'b+a'],
      [13, 10, 'a+b'],
      [12, 10, 'b'],
    ]);
  });

  it('validates rules: min or max required, min below max', () => {
    expect(limitRuleSchema.safeParse({ metric: 'x' }).success).toBe(false);
    expect(limitRuleSchema.safeParse({ metric: 'x', min: 5, max: 1 }).success).toBe(false);
    expect(limitRuleSchema.safeParse({ metric: 'bad name', max: 1 }).success).toBe(false);
    const cfg = alertsConfigSchema.parse({ limits: [{ metric: 'x', max: 1 }] });
    expect(cfg.limits[0]).toMatchObject({ forMs: 0, deadbandAbs: 0, severity: 'warning' });
    expect(cfg.silenceAfterMs).toBe(300_000);
  });
});

describe('silence rule', () => {
  it('raises silence after silenceAfterMs without readings, starting at the last reading, and clears when data returns', () => {
    const out: ConditionEvent[] = [];
    const s = new SilenceRule(60_000, 'warning', (e) => out.push(e), T0);
    s.tick(T0 + 1_000_000); // never seen: nothing to watch
    s.seen(['m1'], T0 + 1000);
    s.tick(T0 + 60_999);
    expect(out).toHaveLength(0);
    s.tick(T0 + 61_000);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ machine: 'm1', kind: 'silence', active: true, eventTs: T0 + 1000, score: 60, threshold: 60 });
    s.tick(T0 + 120_000);
    expect(out).toHaveLength(1);
    s.seen(['m1'], T0 + 130_000);
    expect(out[1]).toMatchObject({ active: false, eventTs: T0 + 130_000 });
  });

  it('gives machines known from before a restart a full interval from boot', () => {
    const out: ConditionEvent[] = [];
    const boot = T0 + 3600_000;
    const s = new SilenceRule(60_000, 'warning', (e) => out.push(e), boot, new Map([['m1', T0]]));
    s.tick(boot + 59_000);
    expect(out).toHaveLength(0);
    s.tick(boot + 60_000);
    expect(out[0]).toMatchObject({ machine: 'm1', eventTs: T0 });
    expect(out[0]!.message).toContain('1h 1m');
  });
});

describe('rules through the engine', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.cleanup();
    h = undefined;
  });

  it('limit and silence alerts open and auto-resolve; kind comes from kindOf', async () => {
    h = await startAlerts(
      { silenceAfterMs: 60_000, limits: [{ kind: 'compressor', metric: 'p_bar', max: 8, forMs: 10_000 }] },
      { kindOf: (m) => (m === 'c1' ? 'compressor' : undefined) },
    );
    const e = h.engine;
    e.onReadings([reading('c1', T0, { p_bar: 9 }), reading('c2', T0, { p_bar: 9 })]);
    h.clock.t = T0 + 10_000;
    e.onReadings([reading('c1', T0 + 10_000, { p_bar: 9.5 }), reading('c2', T0 + 10_000, { p_bar: 9.5 })]);
    let active = e.list({ limit: 10, state: 'active' }).alerts;
    expect(active.map((a) => `${a.machine}:${a.kind}`)).toEqual(['c1:limit']);
    expect(active[0]).toMatchObject({ startedAt: T0, peakScore: 9.5, threshold: 8, severity: 'warning' });
    // Silence: c2 keeps sending, c1 stops.
    h.clock.t = T0 + 50_000;
    e.onReadings([reading('c2', T0 + 50_000, { p_bar: 1 })]);
    h.clock.t = T0 + 70_000;
    e.tick(h.clock.t);
    active = e.list({ limit: 10, state: 'active' }).alerts;
    expect(active.map((a) => `${a.machine}:${a.kind}`).sort()).toEqual(['c1:limit', 'c1:silence']);
    const silence = active.find((a) => a.kind === 'silence')!;
    expect(silence.startedAt).toBe(T0 + 10_000);
    // c1 comes back, within limits: both alerts resolve themselves.
    h.clock.t = T0 + 80_000;
    e.onReadings([reading('c1', T0 + 80_000, { p_bar: 7 })]);
    expect(e.openCount()).toBe(0);
    expect(e.get(silence.id)).toMatchObject({ state: 'resolved', resolution: 'auto', resolvedAt: T0 + 80_000 });
  });

  it('a limit alert resolved inside the 5 s window keeps its true peak; notifications stay rate-limited', async () => {
    h = await startAlerts({ limits: [{ machine: 'm1', metric: 'oil_temp_c', max: 75, severity: 'critical' }] });
    const e = h.engine;
    e.onReadings([reading('m1', T0, { oil_temp_c: 80 })]);
    h.clock.t = T0 + 300;
    e.onReadings([reading('m1', T0 + 300, { oil_temp_c: 81 })]);
    h.clock.t = T0 + 1300;
    e.onReadings([reading('m1', T0 + 1300, { oil_temp_c: 72 })]);
    const a = e.list({ limit: 10 }).alerts;
    expect(a).toHaveLength(1);
    expect(a[0]).toMatchObject({ state: 'resolved', resolvedAt: T0 + 1300, peakScore: 81, threshold: 75, peakAt: T0 + 1300, updateCount: 1 });
    expect(a[0]!.contributorsText).toBe('oil_temp_c 81 above max 75');
    // The peak is stored, but no extra `updated` is published (alerts.updateNotifyIntervalMs).
    expect(h.mqtt.map((m) => (JSON.parse(m.payload) as { event: string }).event)).toEqual(['opened', 'resolved']);
  });

  it('resolving a silence alert by hand stops watching the machine, across restarts too', async () => {
    h = await startAlerts({ silenceAfterMs: 60_000 });
    h.engine.onReadings([reading('old', T0, { x: 1 })]);
    h.clock.t = T0 + 61_000;
    h.engine.tick(h.clock.t);
    const a = h.engine.list({ limit: 1 }).alerts[0]!;
    expect(a.kind).toBe('silence');
    h.engine.resolve(a.id, { who: 'Dana', note: 'machine scrapped' });
    h.clock.t = T0 + 1_000_000;
    h.engine.tick(h.clock.t);
    h = await h.restart();
    h.clock.t += 1_000_000;
    h.engine.tick(h.clock.t);
    expect(h.engine.list({ limit: 10 }).alerts).toHaveLength(1);
  });
});
