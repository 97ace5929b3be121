import { afterEach, describe, expect, it } from 'vitest';
import { AlertError, type AlertTransition } from '../../gateway/src/alerts/index.js';
import { alertLine } from '../../gateway/src/alerts/notify.js';
import { openAlertStore } from '../../gateway/src/alerts/store.js';
import { join } from 'node:path';
import { cond, metricValue, startAlerts, T0, type Harness } from './helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

function events(x: Harness): string[] {
  return x.mqtt.map((m) => (JSON.parse(m.payload) as AlertTransition).event);
}

describe('alert lifecycle', () => {
  it('opens one alert and publishes it on MQTT (machines/<id>/alerts) and to InfluxDB', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    const page = h.engine.list({ limit: 10 });
    expect(page.alerts).toHaveLength(1);
    const a = page.alerts[0]!;
    expect(a).toMatchObject({
      machine: 'm1',
      kind: 'anomaly',
      state: 'open',
      severity: 'warning',
      startedAt: T0,
      peakScore: 5,
      threshold: 3,
      contributorsText: 'vibration_rms_mm_s std 4.1x baseline',
      updateCount: 0,
    });
    expect(a.contributors[0]).toMatchObject({ metric: 'vibration_rms_mm_s', feature: 'std', ratio: 4.1 });
    expect(h.mqtt).toHaveLength(1);
    expect(h.mqtt[0]!.topic).toBe('machines/m1/alerts');
    const t = JSON.parse(h.mqtt[0]!.payload) as AlertTransition;
    expect(t).toMatchObject({ event: 'opened', at: T0, alert: { id: a.id, state: 'open' } });
    expect(h.influx).toHaveLength(1);
    expect(h.influx[0]).toBe(
      `alerts,kind=anomaly,machine=m1,severity=warning id="${a.id}",state="open",event="opened",message="Anomaly score 5 above threshold 3 for 4 of 5 windows",score=5,threshold=3,contributors="vibration_rms_mm_s std 4.1x baseline" ${T0}`,
    );
    expect(h.engine.openCount()).toBe(1);
    expect(await metricValue(h.registry, 'smartops_alerts_active', { kind: 'anomaly', state: 'open' })).toBe(1);
  });

  it('folds repeats into the same alert: peak, contributors and update count, never a duplicate', async () => {
    h = await startAlerts({ updateNotifyIntervalMs: 60_000 });
    h.engine.onCondition(cond());
    const id = h.engine.list({ limit: 10 }).alerts[0]!.id;
    h.clock.t += 10_000;
    h.engine.onCondition(
      cond({
        score: 9,
        message: 'Anomaly score 9 above threshold 3 for 5 of 5 windows',
        contributors: [{ metric: 'spindle_current_a', feature: 'relation', value: 2, baseline: 0, ratio: 6, text: 'spindle_current_a vs speed relation 6 sigma' }],
      }),
    );
    h.clock.t += 10_000;
    h.engine.onCondition(cond({ score: 4, message: 'Anomaly score 4 above threshold 3 for 4 of 5 windows', contributors: [] }));
    const all = h.engine.list({ limit: 10 }).alerts;
    expect(all).toHaveLength(1);
    const a = all[0]!;
    expect(a.id).toBe(id);
    expect(a.updateCount).toBe(2);
    expect(a.score).toBe(4);
    expect(a.peakScore).toBe(9);
    expect(a.peakAt).toBe(T0 + 10_000);
    expect(a.updatedAt).toBe(T0 + 20_000);
    expect(a.contributorsText).toBe('spindle_current_a vs speed relation 6 sigma');
    expect(a.message).toBe('Anomaly score 4 above threshold 3 for 4 of 5 windows');
    // The higher peak came 10 s after opening: its `updated` waits for the rate limit.
    expect(events(h)).toEqual(['opened']);
    h.clock.t = T0 + 59_000;
    h.engine.tick(h.clock.t);
    expect(events(h)).toEqual(['opened']);
    h.clock.t = T0 + 60_000;
    h.engine.tick(h.clock.t);
    expect(events(h)).toEqual(['opened', 'updated']);
    const upd = JSON.parse(h.mqtt[1]!.payload) as AlertTransition;
    expect(upd).toMatchObject({ event: 'updated', reason: 'peak', at: T0 + 60_000 });
    expect(upd.alert.peakScore).toBe(9);
    // Nothing pending any more: no second update.
    h.engine.tick(T0 + 200_000);
    expect(events(h)).toEqual(['opened', 'updated']);
  });

  it('names a channel that now leads an open alert at once, first, keeping the earlier ones', async () => {
    h = await startAlerts({ updateNotifyIntervalMs: 60_000 });
    h.engine.onCondition(cond());
    h.clock.t += 10_000;
    const flow = { metric: 'coolant_flow_l_min', feature: 'presence', value: 0.6, baseline: 1, ratio: -8, text: 'coolant_flow_l_min missing from 40% of readings (normally 0%)' };
    // lower score than the peak: no peak update, but a channel the alert did not name leads now
    h.engine.onCondition(cond({ score: 4, message: 'Anomaly still open, now led by coolant_flow_l_min', contributors: [flow] }));
    expect(events(h)).toEqual(['opened', 'updated']);
    const upd = JSON.parse(h.mqtt[1]!.payload) as AlertTransition;
    expect(upd).toMatchObject({ event: 'updated', reason: 'contributors', at: T0 + 10_000 });
    expect(upd.alert.contributorsText).toBe('coolant_flow_l_min missing from 40% of readings (normally 0%); vibration_rms_mm_s std 4.1x baseline');
    expect(upd.alert.peakScore).toBe(5);
    // the same channel again: nothing new to say
    h.clock.t += 10_000;
    h.engine.onCondition(cond({ score: 4, contributors: [flow] }));
    expect(events(h)).toEqual(['opened', 'updated']);
  });

  it('publishes a severity escalation at once and never de-escalates', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    h.clock.t += 1000;
    h.engine.onCondition(cond({ severity: 'critical', score: 5 }));
    h.engine.onCondition(cond({ severity: 'info', score: 5 }));
    expect(events(h)).toEqual(['opened', 'updated']);
    expect(JSON.parse(h.mqtt[1]!.payload)).toMatchObject({ reason: 'severity' });
    expect(h.engine.list({ limit: 5 }).alerts[0]!.severity).toBe('critical');
  });

  it('ack -> resolve by hand, with who and note; illegal transitions are AlertErrors (409)', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h.clock.t += 5000;
    const acked = h.engine.ack(id, { who: 'Dana', note: 'checking bearing' });
    expect([...h.engine.machinesWithActive()]).toEqual(['m1']); // acknowledged is still active
    expect(acked).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'Dana', ackNote: 'checking bearing', acknowledgedAt: T0 + 5000 });
    const again = (() => {
      try {
        h!.engine.ack(id, { who: 'Sam' });
      } catch (e) {
        return e;
      }
    })();
    expect(again).toBeInstanceOf(AlertError);
    expect(again).toMatchObject({ code: 'ALERT_ALREADY_ACKNOWLEDGED', statusCode: 409 });
    // A repeat while acknowledged updates the alert but keeps it acknowledged.
    h.engine.onCondition(cond({ score: 6 }));
    expect(h.engine.get(id)).toMatchObject({ state: 'acknowledged', peakScore: 6 });
    h.clock.t += 5000;
    const res = h.engine.resolve(id, { who: 'Dana', note: 'bearing replaced' });
    expect(res).toMatchObject({ state: 'resolved', resolution: 'manual', resolvedBy: 'Dana', resolveNote: 'bearing replaced', resolvedAt: T0 + 10_000 });
    expect(() => h!.engine.resolve(id, {})).toThrow(expect.objectContaining({ code: 'ALERT_ALREADY_RESOLVED', statusCode: 409 }));
    expect(() => h!.engine.ack(id, { who: 'x' })).toThrow(expect.objectContaining({ code: 'ALERT_ALREADY_RESOLVED' }));
    expect(() => h!.engine.ack('nope', { who: 'x' })).toThrow(expect.objectContaining({ code: 'ALERT_NOT_FOUND', statusCode: 404 }));
    expect(events(h)).toEqual(['opened', 'acknowledged', 'resolved']);
    expect(h.engine.openCount()).toBe(0);
    expect(h.engine.machinesWithActive().size).toBe(0);
    // The same episode (same start time) repeating does not reopen what a person resolved...
    h.engine.onCondition(cond({ score: 7 }));
    expect(h.engine.list({ limit: 10 }).alerts).toHaveLength(1);
    expect(await metricValue(h.registry, 'smartops_alerts_conditions_ignored_total', { reason: 'resolved_episode' })).toBe(1);
    // ...a new episode does.
    h.engine.onCondition(cond({ eventTs: T0 + 60_000 }));
    const list = h.engine.list({ limit: 10 }).alerts;
    expect(list).toHaveLength(2);
    expect(list[0]!.id).not.toBe(id);
    expect(list[0]!.state).toBe('open');
  });

  it('auto-resolves when the condition clears (also when acknowledged), and a later condition opens a new alert', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    const first = h.engine.list({ limit: 1 }).alerts[0]!;
    h.engine.ack(first.id, { who: 'Dana' });
    h.engine.onCondition(cond({ active: false, eventTs: T0 + 120_000, message: 'Score back below threshold' }));
    const resolved = h.engine.get(first.id)!;
    expect(resolved).toMatchObject({ state: 'resolved', resolution: 'auto', resolvedBy: null, resolvedAt: T0 + 120_000, resolveNote: 'Score back below threshold' });
    const last = JSON.parse(h.mqtt.at(-1)!.payload) as AlertTransition;
    expect(last).toMatchObject({ event: 'resolved', at: T0 + 120_000 });
    // A clear without an active alert changes nothing.
    h.engine.onCondition(cond({ active: false, eventTs: T0 + 130_000 }));
    expect(h.mqtt).toHaveLength(3);
    // Re-open after resolve: a new alert, the old one stays resolved.
    h.engine.onCondition(cond({ eventTs: T0 + 300_000 }));
    const list = h.engine.list({ limit: 10 }).alerts;
    expect(list.map((a) => a.state)).toEqual(['open', 'resolved']);
    expect(list[0]!.id).not.toBe(first.id);
    expect(list[0]!.startedAt).toBe(T0 + 300_000);
  });

  it('keeps one alert per (machine, kind): other kinds and machines get their own', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond());
    h.engine.onCondition(cond({ kind: 'limit' }));
    h.engine.onCondition(cond({ machine: 'm2' }));
    h.engine.onCondition(cond());
    expect(h.engine.openCount()).toBe(3);
    expect([...h.engine.machinesWithActive()].sort()).toEqual(['m1', 'm2']);
    // The store itself refuses a second active alert of the same machine and kind.
    const store = openAlertStore(join(h.dataDir, 'alerts.sqlite'));
    try {
      const dup = { ...h.engine.list({ limit: 1, machine: 'm1', kind: 'anomaly' }).alerts[0]!, id: 'other' };
      expect(() => store.insert(dup)).toThrow(expect.objectContaining({ code: 'ALERT_CONFLICT' }));
    } finally {
      store.close();
    }
  });

  it('ignores invalid condition events (counted) instead of throwing into the detector', async () => {
    h = await startAlerts();
    h.engine.onCondition(cond({ machine: 'bad machine/id' }));
    h.engine.onCondition(cond({ score: Number.NaN }));
    expect(h.engine.openCount()).toBe(0);
    expect(await metricValue(h.registry, 'smartops_alerts_conditions_ignored_total', { reason: 'invalid' })).toBe(2);
  });

  it('keeps the lifecycle going when a notifier fails', async () => {
    h = await startAlerts({}, {
      publishMqtt: async () => {
        throw new Error('broker down');
      },
      writeInflux: () => {
        throw new Error('sink down');
      },
    });
    h.engine.onCondition(cond());
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h.engine.ack(id, { who: 'Dana' });
    expect(h.engine.get(id)!.state).toBe('acknowledged');
    await new Promise((r) => setImmediate(r));
    expect(await metricValue(h.registry, 'smartops_alerts_notifications_total', { sink: 'mqtt', outcome: 'error' })).toBe(2);
    expect(await metricValue(h.registry, 'smartops_alerts_notifications_total', { sink: 'influx', outcome: 'error' })).toBe(2);
  });

  it('escapes line protocol (quotes, commas, spaces, newlines) in the alerts point', () => {
    const line = alertLine({
      seq: 1,
      event: 'opened',
      at: T0,
      alert: {
        id: 'x',
        machine: 'm-1',
        kind: 'limit',
        severity: 'critical',
        state: 'open',
        message: 'temp "hot", really\nhot \\ o',
        startedAt: T0,
        openedAt: T0,
        updatedAt: T0,
        score: null,
        peakScore: null,
        threshold: null,
        peakAt: null,
        contributors: [],
        contributorsText: '',
        updateCount: 0,
        acknowledgedAt: null,
        acknowledgedBy: null,
        ackNote: null,
        resolvedAt: null,
        resolvedBy: null,
        resolveNote: null,
        resolution: null,
      },
    });
    expect(line).toBe(`alerts,kind=limit,machine=m-1,severity=critical id="x",state="open",event="opened",message="temp \\"hot\\", really hot \\\\ o",contributors="" ${T0}`);
  });
});
