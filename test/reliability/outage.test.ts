/**
 * InfluxDB outage under load: the real influxd is stopped while publishers keep sending, then
 * started again on the same data. Every reading arrives once, in order per machine, the outbox
 * drains to zero, retries are counted and /ready reports the sink unreachable meanwhile.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJson, waitFor } from '../helpers/gateway.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { compare, influxPoints, metrics, metricValue, outboxState, RecordingPublisher, spawnGateway, removeTempDirs, tempDir, waitForDrain, type ChildGateway } from './helpers.js';

interface Ready {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail: string }>;
}

describeWithInfluxd('InfluxDB outage under load', () => {
  let influx: Influxd;
  let gw: ChildGateway | undefined;
  const pubs: RecordingPublisher[] = [];

  beforeAll(async () => {
    influx = await startInfluxd();
  });
  afterAll(async () => {
    for (const p of pubs) await p.end();
    gw?.kill('SIGKILL');
    if (gw) await gw.exited;
    removeTempDirs();
    await influx?.stop();
  });

  it('buffers while InfluxDB is down, then delivers every reading once and in order', async () => {
    gw = await spawnGateway({
      dataDir: tempDir('outage'),
      influxUrl: influx.url,
      database: 'outage',
      sets: ['sink.flushIntervalMs=50', 'sink.batchSize=500', 'sink.retryInitialMs=100', 'sink.retryMaxMs=800', 'sink.timeoutMs=2000'],
    });
    const g = gw;
    const t0 = Date.now() - 3600_000;
    const machines = ['press-01', 'lathe-02', 'mill-03'];
    for (const m of machines) {
      const p = await RecordingPublisher.connect(g.mqttUrl, m, t0, { perMessage: 10, window: 10, pauseMs: 5 });
      pubs.push(p);
      p.start();
    }
    const acked = (): number => pubs.reduce((a, p) => a + p.acked.size, 0);
    await waitFor(async () => (await influx.query('SELECT count(v) FROM telemetry', 'outage').catch(() => [])).length > 0, 20000, 'first points in InfluxDB');
    expect((await getJson<Ready>(`${g.httpUrl}/ready`)).status).toBe(200);

    await influx.pause();
    const ackedAtOutage = acked();
    // Readings keep being acknowledged (they are durable in the outbox), the sink is reported down.
    const notReady = await waitFor(
      async () => {
        const r = await getJson<Ready>(`${g.httpUrl}/ready`);
        return r.status === 503 && r.body.checks.sink?.ok === false ? r.body : undefined;
      },
      20000,
      '/ready reporting the sink unreachable',
    );
    expect(notReady.checks.sink?.detail).toContain('unreachable');
    expect(notReady.checks.broker?.ok).toBe(true);
    await waitFor(async () => metricValue(await metrics(g.httpUrl), 'smartops_sink_write_retries_total') >= 3, 20000, 'retries counted');
    await waitFor(() => acked() >= ackedAtOutage + 2000, 30000, 'publishing continues during the outage');
    const during = await outboxState(g.httpUrl);
    expect(during.depth).toBeGreaterThan(0);
    expect(during.oldestAgeS).toBeGreaterThan(0);

    await influx.resume();
    await waitFor(async () => (await getJson<Ready>(`${g.httpUrl}/ready`)).status === 200, 30000, '/ready back to 200');
    for (const p of pubs) await p.stop();
    for (const p of pubs) await p.settle(30000);
    await waitForDrain(g.httpUrl, 40000);

    const m = await metrics(g.httpUrl);
    expect(metricValue(m, 'smartops_outbox_depth')).toBe(0);
    expect(metricValue(m, 'smartops_outbox_bytes')).toBe(0);
    expect(metricValue(m, 'smartops_sink_write_retries_total')).toBeGreaterThanOrEqual(3);
    expect(metricValue(m, 'smartops_sink_write_errors_total', { kind: 'retry' })).toBeGreaterThanOrEqual(3);
    expect(metricValue(m, 'smartops_readings_dropped_total') || 0).toBe(0);

    const points = await influxPoints(influx, 'outage', machines);
    const expected = pubs.flatMap((p) => [...p.acked.values()]);
    // Every message was acknowledged in the end: nothing was refused during the outage.
    expect(pubs.every((p) => p.acked.size === p.sent.size && p.errors === 0)).toBe(true);
    const diff = compare(expected, points);
    expect(diff.missing, g.logs()).toEqual([]);
    expect(diff.wrong).toEqual([]);
    expect(diff.duplicates).toEqual([]);
    expect(points).toHaveLength(expected.length);

    // Order per machine: seq increases with time and none is skipped.
    for (const machine of machines) {
      const seqs = points.filter((p) => p.machine === machine).map((p) => p.seq);
      expect(seqs.length).toBeGreaterThan(0);
      expect(seqs).toEqual(seqs.map((_, i) => i));
    }
    process.stdout.write(`outage test: ${expected.length} readings, ${during.depth} waiting during the outage, ${metricValue(m, 'smartops_sink_write_retries_total')} retries\n`);
    g.kill('SIGTERM');
    expect((await g.exited).code).toBe(0);
  });
});
