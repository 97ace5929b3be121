/**
 * How the forwarder treats what a sink answers, with the gateway as a child process:
 * - a real influxd refusing one point with 400 "field type conflict": that point is quarantined
 *   (visible at GET /api/v1/quarantine), the rest of the batch and everything after it lands;
 * - a write whose response is lost (a proxy in front of the real influxd forwards the write, then
 *   answers 503): the batch is written again and InfluxDB's series + timestamp identity keeps one
 *   point each;
 * - a stand-in HTTP server (influxd cannot be made to answer 503/429/413 on cue) playing InfluxDB
 *   1.x: back-off after 503, Retry-After after 429, splitting after 413, a 400 partial write that
 *   does not block the queue, and the order of each machine's readings across all of it.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJson, waitFor } from '../helpers/gateway.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { compare, influxPoints, metrics, metricValue, outboxState, spawnGateway, removeTempDirs, tempDir, waitForDrain, type ChildGateway, type SentReading } from './helpers.js';

interface Quarantined {
  quarantined: { id: number; machine: string; ts: number; metrics: Record<string, number>; error: string; at: number }[];
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** Publish readings one message each (QoS 1) and return them. */
async function publishAll(client: mqtt.MqttClient, machine: string, t0: number, from: number, to: number, extra?: (seq: number) => Record<string, number>): Promise<SentReading[]> {
  const out: SentReading[] = [];
  for (let seq = from; seq < to; seq++) {
    const r: SentReading = { machine, seq, ts: t0 + seq, value: seq * 0.5 };
    await client.publishAsync(`machines/${machine}/telemetry`, JSON.stringify({ ts: r.ts, metrics: { v: r.value, seq, ...(extra?.(seq) ?? {}) } }), { qos: 1 });
    out.push(r);
  }
  return out;
}

describeWithInfluxd('sink faults', () => {
  let influx: Influxd;
  const children: ChildGateway[] = [];
  const servers: Server[] = [];
  const clients: mqtt.MqttClient[] = [];

  beforeAll(async () => {
    influx = await startInfluxd();
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    for (const c of children) c.kill('SIGKILL');
    for (const s of servers) s.close();
    await Promise.all(children.map((c) => c.exited));
    removeTempDirs();
    await influx?.stop();
  });

  it('a point InfluxDB refuses with 400 (field type conflict) is quarantined; the queue moves on', async () => {
    await influx.createDatabase('conflict');
    const t0 = Date.now() - 3600_000;
    // `bad` becomes a string field in this shard, so a float `bad` is refused with 400 field type conflict.
    await influx.write(`telemetry,machine=press-01 bad="text" ${t0 - 1000}`, 'conflict');
    const gw = await spawnGateway({ dataDir: tempDir('conflict'), influxUrl: influx.url, database: 'conflict', sets: ['sink.flushIntervalMs=200', 'sink.batchSize=1000'] });
    children.push(gw);
    const client = await mqtt.connectAsync(gw.mqttUrl);
    clients.push(client);
    const sent = [
      ...(await publishAll(client, 'press-01', t0, 0, 40, (seq): Record<string, number> => (seq === 17 ? { bad: 1.5 } : {}))),
      ...(await publishAll(client, 'lathe-02', t0, 0, 40)),
    ];
    await waitForDrain(gw.httpUrl, 30000);
    const q = await getJson<Quarantined>(`${gw.httpUrl}/api/v1/quarantine`);
    expect(q.status).toBe(200);
    expect(q.body.quarantined).toHaveLength(1);
    expect(q.body.quarantined[0]).toMatchObject({ machine: 'press-01', ts: t0 + 17, metrics: { v: 8.5, seq: 17, bad: 1.5 } });
    expect(q.body.quarantined[0]?.error).toMatch(/^HTTP 400: .*field type conflict/);
    expect((await outboxState(gw.httpUrl)).quarantined).toBe(1);
    const m = await metrics(gw.httpUrl);
    expect(metricValue(m, 'smartops_sink_quarantined_total')).toBe(1);
    expect(metricValue(m, 'smartops_sink_write_errors_total', { kind: 'rejected' })).toBeGreaterThanOrEqual(1);

    // Everything else landed, including what was published after the bad point.
    const points = await influxPoints(influx, 'conflict', ['press-01', 'lathe-02']);
    const good = sent.filter((r) => !(r.machine === 'press-01' && r.seq === 17));
    expect(compare(good, points)).toEqual({ missing: [], wrong: [], duplicates: [] });
    expect(points.filter((p) => p.seq !== null)).toHaveLength(79);
    gw.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  });

  it('a write whose response is lost is written again; InfluxDB keeps one point each', async () => {
    await influx.createDatabase('lostack');
    // Proxy in front of the real influxd: the first write is forwarded, but the gateway is told 503.
    let writes = 0;
    let forwardedTwice = 0;
    const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      void readBody(req).then((body) => {
        const isWrite = (req.url ?? '').startsWith('/write');
        if (isWrite) writes++;
        const up = request(`${influx.url}${req.url ?? '/'}`, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? 'text/plain' } }, (ur) => {
          const chunks: Buffer[] = [];
          ur.on('data', (c: Buffer) => chunks.push(c));
          ur.on('end', () => {
            if (isWrite && writes === 1) {
              res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"stand-in: response lost"}');
              return;
            }
            if (isWrite && writes === 2) forwardedTwice = body.split('\n').length;
            res.writeHead(ur.statusCode ?? 502, ur.headers).end(Buffer.concat(chunks));
          });
        });
        up.on('error', () => res.writeHead(502).end());
        up.end(body);
      });
    });
    servers.push(proxy);
    const proxyUrl = await listen(proxy);
    const gw = await spawnGateway({ dataDir: tempDir('lostack'), influxUrl: proxyUrl, database: 'lostack', sets: ['sink.flushIntervalMs=300', 'sink.retryInitialMs=100'] });
    children.push(gw);
    const client = await mqtt.connectAsync(gw.mqttUrl);
    clients.push(client);
    const t0 = Date.now() - 3600_000;
    await client.publishAsync('machines/press-01/telemetry', JSON.stringify({ readings: Array.from({ length: 50 }, (_, i) => ({ ts: t0 + i, metrics: { v: i * 0.5, seq: i } })) }), { qos: 1 });
    await waitForDrain(gw.httpUrl, 20000);
    expect(writes).toBeGreaterThanOrEqual(2);
    // The same 50 points reached InfluxDB twice...
    expect(forwardedTwice).toBe(50);
    // ...and InfluxDB holds each once.
    const points = await influxPoints(influx, 'lostack', ['press-01']);
    expect(points.map((p) => p.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    gw.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  });

  it('stand-in InfluxDB: back-off on 503, Retry-After on 429, split on 413, 400 does not block, order kept', async () => {
    // Stand-in for InfluxDB 1.x: scripted answers, every accepted line recorded in arrival order.
    const MAX_LINES = 16;
    const attempts: { at: number; lines: number; status: number }[] = [];
    const stored: string[] = [];
    const script = [503, 503, 429];
    const standIn = createServer((req: IncomingMessage, res: ServerResponse) => {
      void readBody(req).then((body) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/ping') return res.writeHead(204).end();
        if (path === '/query') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"results":[{"statement_id":0}]}');
        if (path !== '/write') return res.writeHead(404).end();
        const lines = body.split('\n').filter((l) => l.length > 0);
        const scripted = script.shift();
        let status = 204;
        let headers: Record<string, string> = {};
        let text = '';
        if (scripted === 429) {
          status = 429;
          headers = { 'retry-after': '2' };
          text = '{"error":"stand-in: slow down"}';
        } else if (scripted !== undefined) {
          status = scripted;
          text = '{"error":"stand-in: unavailable"}';
        } else if (lines.length > MAX_LINES) {
          status = 413;
          text = '{"error":"stand-in: request entity too large"}';
        } else {
          // Like InfluxDB 1.x: store the valid points, refuse the batch with 400 if one is bad.
          const bad = lines.filter((l) => l.includes('poison='));
          for (const l of lines) if (!l.includes('poison=')) stored.push(l);
          if (bad.length > 0) {
            status = 400;
            text = `{"error":"partial write: stand-in refuses poison dropped=${bad.length}"}`;
          }
        }
        attempts.push({ at: Date.now(), lines: lines.length, status });
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(text);
      });
    });
    servers.push(standIn);
    const url = await listen(standIn);
    const retryInitialMs = 400;
    const gw = await spawnGateway({
      dataDir: tempDir('standin'),
      influxUrl: url,
      database: 'standin',
      sets: ['sink.flushIntervalMs=100', 'sink.batchSize=200', `sink.retryInitialMs=${retryInitialMs}`, 'sink.retryMaxMs=5000'],
    });
    children.push(gw);
    const client = await mqtt.connectAsync(gw.mqttUrl);
    clients.push(client);
    const t0 = Date.now() - 3600_000;
    // Two machines interleaved in batches of 10; one poisoned reading in the middle.
    const sent: SentReading[] = [];
    for (let b = 0; b < 12; b++) {
      for (const machine of ['press-01', 'lathe-02']) {
        const batch = Array.from({ length: 10 }, (_, i) => b * 10 + i);
        await client.publishAsync(
          `machines/${machine}/telemetry`,
          JSON.stringify({ readings: batch.map((seq) => ({ ts: t0 + seq, metrics: { v: seq * 0.5, seq, ...(machine === 'lathe-02' && seq === 55 ? { poison: 1 } : {}) } })) }),
          { qos: 1 },
        );
        for (const seq of batch) sent.push({ machine, seq, ts: t0 + seq, value: seq * 0.5 });
      }
    }
    await waitForDrain(gw.httpUrl, 40000);

    // 503, 503: exponential back-off with jitter, never shorter than half the current step.
    const [a0, a1, a2, a3] = attempts as [(typeof attempts)[0], (typeof attempts)[0], (typeof attempts)[0], (typeof attempts)[0]];
    expect([a0.status, a1.status, a2.status]).toEqual([503, 503, 429]);
    expect(a1.at - a0.at).toBeGreaterThanOrEqual(retryInitialMs / 2 - 5);
    expect(a2.at - a1.at).toBeGreaterThanOrEqual(retryInitialMs - 5);
    // 429 with Retry-After: 2 => the next attempt waits at least 2 s.
    expect(a3.at - a2.at).toBeGreaterThanOrEqual(2000 - 5);
    // 413: split until the batches fit.
    expect(attempts.some((a) => a.status === 413)).toBe(true);
    expect(attempts.filter((a) => a.status === 204 || a.status === 400).every((a) => a.lines <= MAX_LINES)).toBe(true);
    // 400: only the poisoned reading is quarantined; everything else, before and after it, arrived.
    const q = await getJson<Quarantined>(`${gw.httpUrl}/api/v1/quarantine`);
    expect(q.body.quarantined.map((e) => `${e.machine}/${e.metrics.seq}`)).toEqual(['lathe-02/55']);
    const storedKeys = new Set(stored.map((l) => `${/machine=([^ ,]+)/.exec(l)?.[1]}/${/seq=(\d+)/.exec(l)?.[1]}`));
    const missing = sent.filter((r) => !(r.machine === 'lathe-02' && r.seq === 55) && !storedKeys.has(`${r.machine}/${r.seq}`));
    expect(missing).toEqual([]);
    // Order per machine: the first arrival of each reading follows the publishing order.
    for (const machine of ['press-01', 'lathe-02']) {
      const first: number[] = [];
      const seen = new Set<number>();
      for (const l of stored) {
        if (!l.includes(`machine=${machine}`)) continue;
        const seq = Number(/seq=(\d+)/.exec(l)?.[1]);
        if (!seen.has(seq)) first.push(seq);
        seen.add(seq);
      }
      expect(first).toEqual([...first].sort((x, y) => x - y));
    }
    const m = await metrics(gw.httpUrl);
    expect(metricValue(m, 'smartops_sink_write_retries_total')).toBe(3);
    expect(metricValue(m, 'smartops_sink_write_errors_total', { kind: 'too_large' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'smartops_sink_write_errors_total', { kind: 'rejected' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'smartops_sink_quarantined_total')).toBe(1);
    await waitFor(async () => (await getJson<{ ready: boolean }>(`${gw.httpUrl}/ready`)).body.ready, 10000, 'ready again');
    gw.kill('SIGTERM');
    expect((await gw.exited).code).toBe(0);
  });
});
