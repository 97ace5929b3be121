/**
 * Disk budget: with InfluxDB (real influxd) stopped, publishers fill a small outbox.maxBytes.
 * - reject (the default): publishers are held, then disconnected; they reconnect and resend; nothing
 *   acknowledged is lost; refusals are counted; the gateway keeps serving HTTP; /ready fails above
 *   outbox.readyThreshold.
 * - drop-oldest: every message is acknowledged, the oldest readings are deleted, counted exactly in
 *   smartops_readings_dropped_total and logged; what InfluxDB gets afterwards is exactly the newest.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJson, waitFor } from '../helpers/gateway.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { compare, influxPoints, metrics, metricValue, outboxState, RecordingPublisher, spawnGateway, removeTempDirs, tempDir, waitForDrain, type ChildGateway } from './helpers.js';

interface Ready {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

const MIB = 1024 * 1024;

describeWithInfluxd('outbox disk budget full', () => {
  let influx: Influxd;
  const children: ChildGateway[] = [];
  const pubs: RecordingPublisher[] = [];

  beforeAll(async () => {
    influx = await startInfluxd();
  });
  afterAll(async () => {
    for (const p of pubs) await p.end();
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    removeTempDirs();
    await influx?.stop();
  });

  it('reject: holds then disconnects publishers, loses nothing acknowledged, keeps serving HTTP', async () => {
    await influx.createDatabase('reject');
    const gw = await spawnGateway({
      dataDir: tempDir('reject'),
      influxUrl: influx.url,
      database: 'reject',
      sets: [`outbox.maxBytes=${MIB}`, 'outbox.fullPolicy=reject', 'outbox.fullWaitMs=1000', 'outbox.readyThreshold=0.5', 'sink.flushIntervalMs=50', 'sink.retryInitialMs=100', 'sink.retryMaxMs=500'],
    });
    children.push(gw);
    await influx.pause();
    const t0 = Date.now() - 3600_000;
    for (const m of ['press-01', 'lathe-02']) {
      const p = await RecordingPublisher.connect(gw.mqttUrl, m, t0, { perMessage: 50, window: 10, reconnect: true });
      pubs.push(p);
      p.start();
    }
    const notReady = await waitFor(
      async () => {
        const r = await getJson<Ready>(`${gw.httpUrl}/ready`);
        return r.status === 503 && r.body.checks.outbox?.ok === false ? r.body : undefined;
      },
      30000,
      '/ready failing on the outbox budget',
    );
    expect(notReady.checks.outbox?.detail).toMatch(/% of the 1048576-byte budget/);
    // Held past fullWaitMs: refused (no PUBACK) and the publisher disconnected; counted.
    await waitFor(
      async () => {
        const m = await metrics(gw.httpUrl);
        return metricValue(m, 'smartops_messages_rejected_total', { reason: 'outbox_full' }) > 0 && metricValue(m, 'smartops_mqtt_connection_events_total', { event: 'disconnect' }) > 0;
      },
      30000,
      'outbox_full refusals and disconnects counted',
    );
    // The gateway stays up and answers.
    expect((await getJson<{ status: string }>(`${gw.httpUrl}/health`)).body.status).toBe('ok');
    const full = await outboxState(gw.httpUrl);
    expect(full.bytes).toBeLessThanOrEqual(MIB);
    expect(full.bytes).toBeGreaterThan(MIB * 0.9);
    const ackedWhileFull = pubs.reduce((a, p) => a + p.acked.size, 0);
    expect(full.depth).toBe(ackedWhileFull);
    expect(gw.logLines().some((l) => String(l.msg).includes('not stored'))).toBe(true);
    // Listed with the other refusals, saying why the publisher got no PUBACK.
    const listed = await getJson<{ rejects: { reason: string; detail: string; topic: string }[] }>(`${gw.httpUrl}/api/v1/rejects?limit=100`);
    const full1 = listed.body.rejects.filter((x) => x.reason === 'outbox_full');
    expect(full1.length).toBeGreaterThan(0);
    expect(full1[0]?.detail).toMatch(/^not stored, not acknowledged .*outbox/);
    expect(full1[0]?.topic).toMatch(/^machines\/.+\/telemetry$/);

    for (const p of pubs) await p.stop();
    await influx.resume();
    // Publishers reconnect and resend what was refused; all of it is acknowledged once space frees up.
    for (const p of pubs) await p.settle(40000);
    await waitForDrain(gw.httpUrl, 40000);
    const points = await influxPoints(influx, 'reject', ['press-01', 'lathe-02']);
    const expected = pubs.flatMap((p) => [...p.acked.values()]);
    const sent = pubs.reduce((a, p) => a + p.sent.size, 0);
    const diff = compare(expected, points);
    expect(diff.missing, gw.logs()).toEqual([]);
    expect(diff.wrong).toEqual([]);
    expect(diff.duplicates).toEqual([]);
    // Back-pressure, not loss: in the end every reading sent was acknowledged and stored.
    expect(expected.length).toBe(sent);
    expect(points).toHaveLength(sent);
    const m = await metrics(gw.httpUrl);
    expect(metricValue(m, 'smartops_readings_dropped_total', { reason: 'outbox_full_drop_oldest' }) || 0).toBe(0);
    process.stdout.write(`budget/reject: ${ackedWhileFull} readings filled 1 MiB; ${metricValue(m, 'smartops_messages_rejected_total', { reason: 'outbox_full' })} messages refused while full; ${sent} delivered in the end\n`);
    gw.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
    for (const p of pubs.splice(0)) await p.end();
  });

  it('drop-oldest: acknowledges everything, deletes and counts the oldest, delivers exactly the newest', async () => {
    await influx.createDatabase('dropold');
    const gw = await spawnGateway({
      dataDir: tempDir('dropold'),
      influxUrl: influx.url,
      database: 'dropold',
      sets: [`outbox.maxBytes=${MIB}`, 'outbox.fullPolicy=drop-oldest', 'sink.flushIntervalMs=50', 'sink.retryInitialMs=100', 'sink.retryMaxMs=500'],
    });
    children.push(gw);
    await influx.pause();
    const t0 = Date.now() - 3600_000;
    // About 2.5 budgets' worth of readings.
    const p = await RecordingPublisher.connect(gw.mqttUrl, 'press-09', t0, { perMessage: 50, window: 10, maxMessages: 600 });
    pubs.push(p);
    p.start();
    await p.finished();
    await p.settle(40000);
    expect(p.acked.size).toBe(30000);
    expect(p.errors).toBe(0);

    const m = await metrics(gw.httpUrl);
    const dropped = metricValue(m, 'smartops_readings_dropped_total', { reason: 'outbox_full_drop_oldest' });
    const state = await outboxState(gw.httpUrl);
    expect(dropped).toBeGreaterThan(10000);
    expect(state.bytes).toBeLessThanOrEqual(MIB);
    expect(state.depth + dropped).toBe(30000);
    expect(gw.logLines().some((l) => l.policy === 'drop-oldest')).toBe(true);
    const r = await getJson<Ready>(`${gw.httpUrl}/ready`);
    expect(r.status).toBe(503);
    expect(r.body.checks.outbox?.ok).toBe(false);

    await influx.resume();
    await waitForDrain(gw.httpUrl, 40000);
    const points = await influxPoints(influx, 'dropold', ['press-09']);
    // Exactly the newest readings arrive: the oldest `dropped` are gone, in order, nothing else.
    expect(points).toHaveLength(30000 - dropped);
    expect(points.map((pt) => pt.seq)).toEqual(points.map((_, i) => dropped + i));
    const newest = [...p.acked.values()].filter((r) => r.seq >= dropped);
    expect(compare(newest, points)).toEqual({ missing: [], wrong: [], duplicates: [] });
    process.stdout.write(`budget/drop-oldest: 30000 acknowledged, ${dropped} dropped and counted, ${points.length} delivered\n`);
    gw.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  });
});
