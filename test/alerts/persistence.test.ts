import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cond, startAlerts, T0, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

describe('alert persistence (SQLite <dataDir>/alerts.sqlite)', () => {
  it('keeps alerts, their states and the one-open rule across a restart', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    h.engine.onCondition(cond({ machine: 'm2', severity: 'critical', score: 90, threshold: 80 }));
    h.engine.onCondition(cond({ machine: 'm3' }));
    const [m3, m2, m1] = h.engine.list({ limit: 10 }).alerts.sort((a, b) => b.machine.localeCompare(a.machine));
    h.engine.ack(m1!.id, { who: 'Dana', note: 'on it' });
    h.engine.resolve(m3!.id, { who: 'Sam' });
    expect(existsSync(join(h.dataDir, 'alerts.sqlite'))).toBe(true);

    h = await h.restart();
    const all = h.engine.list({ limit: 10 }).alerts;
    expect(all).toHaveLength(3);
    expect(h.engine.get(m1!.id)).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'Dana', ackNote: 'on it', contributorsText: 'vibration_rms_mm_s std 4.1x baseline' });
    expect(h.engine.get(m2!.id)).toMatchObject({ state: 'open', severity: 'critical', peakScore: 90, threshold: 80 });
    expect(h.engine.get(m3!.id)).toMatchObject({ state: 'resolved', resolvedBy: 'Sam', resolution: 'manual' });
    expect(h.engine.openCount()).toBe(2);

    // A repeat after the restart updates the alert from before it, never duplicates it.
    h.engine.onCondition(cond({ score: 8 }));
    const m1After = h.engine.list({ limit: 10, machine: 'm1' }).alerts;
    expect(m1After).toHaveLength(1);
    expect(m1After[0]).toMatchObject({ id: m1!.id, state: 'acknowledged', peakScore: 8, updateCount: 1 });
    // And the clear still resolves it.
    h.engine.onCondition(cond({ active: false, eventTs: T0 + 5000 }));
    expect(h.engine.get(m1!.id)!.state).toBe('resolved');
  });

  it('re-attaches limit rules to a limit alert open before the restart, so it clears when the metric is back', async () => {
    const limits = [{ machine: 'm1', metric: 'temp_c', max: 80 }, { machine: 'm1', metric: 'p_bar', max: 5 }];
    h = await startAlerts({ limits });
    h.engine.onReadings([{ machine: 'm1', ts: T0, metrics: { temp_c: 90, p_bar: 6 } }]);
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h = await h.restart();
    h.engine.onReadings([{ machine: 'm1', ts: T0 + 1000, metrics: { temp_c: 70 } }]);
    expect(h.engine.get(id)!.state).toBe('open'); // p_bar not seen back yet
    h.engine.onReadings([{ machine: 'm1', ts: T0 + 2000, metrics: { p_bar: 4 } }]);
    expect(h.engine.get(id)).toMatchObject({ state: 'resolved', resolution: 'auto', resolvedAt: T0 + 2000 });
  });

  it('clears a limit alert at start-up when its rule was removed from the config', async () => {
    h = await startAlerts({ limits: [{ machine: 'm1', metric: 'temp_c', max: 80 }] });
    h.engine.onReadings([{ machine: 'm1', ts: T0, metrics: { temp_c: 90 } }]);
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h = await h.restart({ limits: [] });
    expect(h.engine.get(id)!.state).toBe('resolved');
  });

  it('remembers last-seen machines across a restart for the silence rule', async () => {
    h = await startAlerts({ silenceAfterMs: 60_000 });
    h.engine.onReadings([{ machine: 'm1', ts: T0, metrics: { x: 1 } }]);
    h = await h.restart();
    h.clock.t += 59_000;
    h.engine.tick(h.clock.t);
    expect(h.engine.openCount()).toBe(0);
    h.clock.t += 1000;
    h.engine.tick(h.clock.t);
    const a = h.engine.list({ limit: 1 }).alerts[0]!;
    expect(a).toMatchObject({ machine: 'm1', kind: 'silence', startedAt: T0 });
    // Open silence alert survives another restart and clears when the machine is back.
    h = await h.restart();
    h.engine.onReadings([{ machine: 'm1', ts: h.clock.t, metrics: { x: 1 } }]);
    expect(h.engine.get(a.id)!.state).toBe('resolved');
  });
});
