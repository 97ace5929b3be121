/** Integration against a real InfluxDB 1.x started by the harness (Debian `influxd`). */
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { InfluxV1Sink } from '../../gateway/src/sinks/influx-v1.js';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';

describeWithInfluxd('gateway -> InfluxDB 1.x', () => {
  let influx: Influxd;
  let gw: TestGateway;
  let client: mqtt.MqttClient;
  const t0 = Date.parse('2026-11-20T10:00:00.123Z') > Date.now() - 29 * 86400_000 ? Date.parse('2026-11-20T10:00:00.123Z') : Date.now() - 3600_000;

  beforeAll(async () => {
    influx = await startInfluxd();
    gw = await startTestGateway({
      influx: { url: influx.url, database: 'shop' },
      machines: { 'cnc-01': { site: 'Halle 3, Süd', line: 'line 1', kind: 'cnc' } },
      sink: { batchSize: 3, flushIntervalMs: 100 },
    });
    client = await mqtt.connectAsync(gw.mqttUrl);
  });
  afterAll(async () => {
    await client?.endAsync();
    await gw?.stop();
    await influx?.stop();
  });

  it('writes the exact values with tags and timestamps, single and batch', async () => {
    expect(gw.gateway.sinkType).toBe('influxdb-v1');
    await client.publishAsync('machines/cnc-01/telemetry', JSON.stringify({ ts: t0, metrics: { spindle_rpm: 12000, motor_current_a: 7.25 } }), { qos: 1 });
    await client.publishAsync(
      'machines/pump-07/telemetry',
      JSON.stringify({ readings: [0, 1, 2, 3, 4].map((i) => ({ ts: new Date(t0 + i * 1000).toISOString(), metrics: { flow_l_min: 30 + i / 8, pressure_bar: 2.5 } })) }),
      { qos: 1 },
    );
    const rows = await waitFor(async () => {
      const r = await influx.query('SELECT * FROM telemetry ORDER BY time', 'shop');
      return r.length === 6 ? r : undefined;
    }, 10000, 'six points in InfluxDB');
    const cnc = rows.filter((r) => r.machine === 'cnc-01');
    expect(cnc).toEqual([
      expect.objectContaining({ time: new Date(t0).toISOString(), machine: 'cnc-01', site: 'Halle 3, Süd', line: 'line 1', kind: 'cnc', spindle_rpm: 12000, motor_current_a: 7.25 }),
    ]);
    const pump = rows.filter((r) => r.machine === 'pump-07');
    expect(pump.map((r) => r.flow_l_min)).toEqual([30, 30.125, 30.25, 30.375, 30.5]);
    expect(pump.map((r) => Date.parse(r.time as string))).toEqual([0, 1, 2, 3, 4].map((i) => t0 + i * 1000));
    expect(pump.every((r) => r.site === null && r.pressure_bar === 2.5)).toBe(true);
  });

  it('answers the readings endpoint from InfluxDB', async () => {
    const r = await getJson<{ source: string; readings: { ts: number; metrics: Record<string, number> }[] }>(
      `${gw.httpUrl}/api/v1/machines/pump-07/readings?order=asc&metric=flow_l_min&limit=3`,
    );
    expect(r.status).toBe(200);
    expect(r.body.source).toBe('influxdb-v1');
    expect(r.body.readings).toEqual([0, 1, 2].map((i) => expect.objectContaining({ ts: t0 + i * 1000, metrics: { flow_l_min: 30 + i / 8 } })));
  });

  it('keeps a metric named time or like a tag (InfluxDB would drop it or hide the point) as <name>_, and the API gives every metric back under its own name', async () => {
    // time_ and _field are metrics of their own beside time: each is stored one `_` longer, so
    // nothing lands on another metric's key and every value comes back under the name it was sent with.
    await client.publishAsync(
      'machines/cnc-01/telemetry',
      JSON.stringify({ readings: [{ ts: t0 + 120_000, metrics: { time: 1.5, machine: 2, line: 3, spindle_rpm: 9000, time_: 7, _field: 8 } }, { ts: t0 + 121_000, metrics: { time: 4.5 } }] }),
      { qos: 1 },
    );
    // Found by its machine tag (a field called machine would have made this WHERE compare the field).
    const rows = await waitFor(async () => {
      const r = await influx.query(`SELECT * FROM telemetry WHERE machine = 'cnc-01' AND time >= ${(t0 + 120_000) * 1e6} ORDER BY time`, 'shop');
      return r.length === 2 ? r : undefined;
    }, 10000, 'both points in InfluxDB');
    expect(rows[0]).toEqual(expect.objectContaining({ machine: 'cnc-01', line: 'line 1', time_: 1.5, machine_: 2, line_: 3, spindle_rpm: 9000, time__: 7, _field_: 8 }));
    expect(rows[1]).toEqual(expect.objectContaining({ machine: 'cnc-01', time_: 4.5 }));
    const api = await getJson<{ readings: { ts: number; metrics: Record<string, number> }[] }>(`${gw.httpUrl}/api/v1/machines/cnc-01/readings?order=asc&from=${t0 + 120_000}`);
    expect(api.body.readings.map((r) => r.metrics)).toEqual([{ time: 1.5, machine: 2, line: 3, spindle_rpm: 9000, time_: 7, _field: 8 }, { time: 4.5 }]);
    const one = await getJson<{ readings: { metrics: Record<string, number> }[] }>(`${gw.httpUrl}/api/v1/machines/cnc-01/readings?order=asc&from=${t0 + 120_000}&metric=time`);
    expect(one.body.readings.map((r) => r.metrics)).toEqual([{ time: 1.5 }, { time: 4.5 }]);
    const other = await getJson<{ readings: { metrics: Record<string, number> }[] }>(`${gw.httpUrl}/api/v1/machines/cnc-01/readings?order=asc&from=${t0 + 120_000}&metric=time_`);
    expect(other.body.readings.map((r) => r.metrics)).toEqual([{ time_: 7 }]);
    const quarantined = await getJson<{ readings?: unknown[] }>(`${gw.httpUrl}/api/v1/quarantine`);
    expect(JSON.stringify(quarantined.body)).not.toContain('"time"');
  });

  it('a replayed reading is harmless: series + timestamp identity keeps one point', async () => {
    const msg = JSON.stringify({ ts: t0 + 60_000, metrics: { spindle_rpm: 11000 } });
    await client.publishAsync('machines/cnc-01/telemetry', msg, { qos: 1 });
    await client.publishAsync('machines/cnc-01/telemetry', msg, { qos: 1 });
    const rows = await waitFor(async () => {
      const m = await fetch(`${gw.httpUrl}/metrics`).then((x) => x.text());
      if (!/smartops_outbox_depth 0/.test(m)) return undefined;
      const r = await influx.query(`SELECT spindle_rpm FROM telemetry WHERE machine = 'cnc-01' AND time = ${(t0 + 60_000) * 1e6}`, 'shop');
      return r.length > 0 ? r : undefined;
    });
    expect(rows).toHaveLength(1);
  });

  it('counts every delete of confirmed readings in /metrics: one per batch written', async () => {
    const m = await fetch(`${gw.httpUrl}/metrics`).then((x) => x.text());
    const value = (re: RegExp): number => Number(re.exec(m)?.[1] ?? NaN);
    const batches = value(/^smartops_sink_batches_written_total\{sink="influxdb-v1"\} (\d+)$/m);
    const posted = value(/^smartops_outbox_acks_total\{mode="posted"\} (\d+)$/m);
    const waited = value(/^smartops_outbox_acks_total\{mode="waited"\} (\d+)$/m);
    expect(batches).toBeGreaterThanOrEqual(3);
    expect(posted + waited).toBe(batches);
    expect(value(/^smartops_outbox_ack_retries_total (\d+)$/m)).toBe(0);
  });
});

describeWithInfluxd('InfluxDB 1.x sink with influx.gzip', () => {
  let influx: Influxd;
  let server: Server;
  let standIn = '';
  const seen: { encoding: string | undefined; body: string }[] = [];
  beforeAll(async () => {
    influx = await startInfluxd();
    // Records what the sink sends (InfluxDB does not say whether a body came compressed).
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        seen.push({ encoding: req.headers['content-encoding'], body: (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    standIn = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server?.close(() => r()));
    await influx?.stop();
  });

  const readings: Reading[] = Array.from({ length: 300 }, (_, i) => ({ machine: `m-${i % 3}`, ts: Date.now() - 60_000 + i, metrics: { temp_c: 40 + i / 8, rpm: 1200 + i } }));
  const sink = (url: string, gzip: boolean): InfluxV1Sink => new InfluxV1Sink({ url, database: 'gz', createDatabase: true, timeoutMs: 5000, gzip, tagsFor: () => undefined });

  it('compresses bodies of 1,000 bytes or more only when asked, and InfluxDB 1.x stores them', async () => {
    expect(await sink(standIn, false).write(readings)).toEqual({ ok: true });
    expect(await sink(standIn, true).write(readings)).toEqual({ ok: true });
    expect(await sink(standIn, true).write(readings.slice(0, 3))).toEqual({ ok: true });
    const writes = seen.filter((x) => x.body.startsWith('telemetry'));
    expect(writes.map((x) => x.encoding)).toEqual([undefined, 'gzip', undefined]);
    expect(writes[1]?.body).toBe(writes[0]?.body);
    // The edge: a body of 1,000 bytes is compressed, one of 999 is not (36 bytes plus the machine id).
    seen.length = 0;
    for (const n of [1000, 999]) expect(await sink(standIn, true).write([{ machine: 'a'.repeat(n - 36), ts: 1700000000000, metrics: { v: 1 } }])).toEqual({ ok: true });
    expect(seen.filter((x) => x.body.startsWith('telemetry')).map((x) => [Buffer.byteLength(x.body), x.encoding])).toEqual([[1000, 'gzip'], [999, undefined]]);

    expect(await sink(influx.url, true).write(readings)).toEqual({ ok: true });
    const rows = await influx.query('SELECT "temp_c", "rpm" FROM telemetry ORDER BY time', 'gz');
    expect(rows.map((r) => [r.temp_c, r.rpm])).toEqual(readings.map((r) => [r.metrics.temp_c, r.metrics.rpm]));
  });
});
