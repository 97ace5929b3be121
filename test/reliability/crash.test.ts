/**
 * Crash safety: the gateway (a real child process) is killed with SIGKILL in the middle of a QoS 1
 * publishing run and restarted on the same data dir and MQTT port. Every reading a publisher got a
 * PUBACK for must be in InfluxDB (real influxd) afterwards, with its exact value and timestamp, once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../helpers/gateway.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { compare, influxPoints, metrics, metricValue, RecordingPublisher, spawnGateway, removeTempDirs, tempDir, waitForDrain, type ChildGateway, type SentReading } from './helpers.js';

describeWithInfluxd('SIGKILL during a QoS 1 publishing run', () => {
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

  it('every acknowledged reading is in InfluxDB after a restart, exactly once, nothing invented', async () => {
    const dataDir = tempDir('crash');
    // Small batches and a short flush interval so the forwarder is mid-write most of the time.
    const sets = ['sink.flushIntervalMs=20', 'sink.batchSize=100', 'sink.retryInitialMs=50', 'sink.retryMaxMs=500'];
    const gw = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'crash', sets });
    children.push(gw);
    const t0 = Date.now() - 3600_000;
    const machines = ['press-01', 'lathe-02', 'mill-03'];
    for (const m of machines) {
      const p = await RecordingPublisher.connect(gw.mqttUrl, m, t0, { perMessage: 5, window: 20, reconnect: true });
      pubs.push(p);
      p.start();
    }
    const acked = (): number => pubs.reduce((a, p) => a + p.acked.size, 0);
    // Kill once the run is well under way and InfluxDB already has part of it.
    await waitFor(async () => acked() >= 3000 && (await influx.query('SELECT count(v) FROM telemetry', 'crash').catch(() => [])).length > 0, 40000, `3000 readings acknowledged (${acked()})\n${gw.logs()}`);
    gw.kill('SIGKILL');
    const exit = await gw.exited;
    expect(exit.signal).toBe('SIGKILL');
    const ackedAtKill = acked();

    // Same data dir and MQTT port: the publishers reconnect by themselves and resend what was not acknowledged.
    const gw2 = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'crash', sets, mqttPort: gw.mqttPort });
    children.push(gw2);
    await waitFor(() => acked() >= ackedAtKill + 1500, 40000, `publishing resumed after the restart (${acked()} acked)\n${gw2.logs()}`);
    for (const p of pubs) await p.stop();
    for (const p of pubs) await p.settle(30000);
    await waitForDrain(gw2.httpUrl, 40000);

    const expected: SentReading[] = pubs.flatMap((p) => [...p.acked.values()]);
    const points = await influxPoints(influx, 'crash', machines);
    const diff = compare(expected, points);
    expect(diff.missing, `acknowledged readings missing from InfluxDB\n${gw2.logs()}`).toEqual([]);
    expect(diff.wrong).toEqual([]);
    // A crash replays what was written but not yet deleted, and publishers resend what was not
    // acknowledged: InfluxDB's series + timestamp identity keeps one point for each.
    expect(diff.duplicates).toEqual([]);
    // Nothing invented: every point in InfluxDB is a reading some publisher sent.
    const sent = new Set(pubs.flatMap((p) => [...p.sent.keys()]));
    expect(points.filter((pt) => !sent.has(`${pt.machine}/${pt.seq}`))).toEqual([]);
    expect(points.length).toBeGreaterThanOrEqual(expected.length);

    const m = await metrics(gw2.httpUrl);
    expect(metricValue(m, 'smartops_outbox_depth')).toBe(0);
    // No series yet means nothing was ever dropped.
    expect(metricValue(m, 'smartops_readings_dropped_total') || 0).toBe(0);
    const replayed = metricValue(m, 'smartops_sink_readings_written_total');
    process.stdout.write(`crash test: ${ackedAtKill} acked at SIGKILL, ${expected.length} acked in all, ${points.length} points in InfluxDB, ${replayed} written after the restart\n`);
    gw2.kill('SIGTERM');
    expect((await gw2.exited).code).toBe(0);
  });
});
