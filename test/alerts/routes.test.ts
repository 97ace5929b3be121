/** HTTP routes through a real fastify instance listening on a loopback port. */
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertRoutes, type Alert, type AlertTransition } from '../../gateway/src/alerts/index.js';
import { cond, metricValue, startAlerts, T0, type Harness } from './helpers.js';

let h: Harness;
let app: FastifyInstance;
let base: string;
const routeScopes = new Map<string, unknown>();

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  h = await startAlerts({ stream: { maxClients: 2, heartbeatMs: 1000 } });
  // 7 alerts over 7 machines with distinct start times, plus one sharing a start time.
  for (let i = 0; i < 7; i++) {
    h.engine.onCondition(cond({ machine: `m${i}`, eventTs: T0 + i * 60_000, kind: i % 2 ? 'limit' : 'anomaly', severity: i === 3 ? 'critical' : 'warning' }));
  }
  h.engine.onCondition(cond({ machine: 'm7', eventTs: T0 + 6 * 60_000 }));
  app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(fastifySwagger, { openapi: { info: { title: 't', version: '1' } }, transform: jsonSchemaTransform });
  app.addHook('onRoute', (r) => {
    routeScopes.set(`${r.method} ${r.url}`, (r.config as { scope?: unknown } | undefined)?.scope);
  });
  await app.register(alertRoutes({ engine: h.engine }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await h?.cleanup();
});

describe('GET /api/v1/alerts', () => {
  it('lists newest first with cursor pagination, no overlap, no gap', async () => {
    const seen: Alert[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: { status: number; json: any } = await call('GET', `/api/v1/alerts?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...(r.json.alerts as Alert[]));
      cursor = r.json.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(8);
    expect(new Set(seen.map((a) => a.id)).size).toBe(8);
    const starts = seen.map((a) => a.startedAt);
    expect(starts).toEqual([...starts].sort((a, b) => b - a));
    // Ties on startedAt are ordered by insertion, newest first.
    expect(seen.slice(0, 2).map((a) => a.machine)).toEqual(['m7', 'm6']);
  });

  it('filters by machine, state, kind, severity and time range (epoch ms or ISO)', async () => {
    expect((await call('GET', '/api/v1/alerts?machine=m3')).json.alerts.map((a: Alert) => a.machine)).toEqual(['m3']);
    expect((await call('GET', '/api/v1/alerts?severity=critical')).json.alerts.map((a: Alert) => a.machine)).toEqual(['m3']);
    expect((await call('GET', '/api/v1/alerts?kind=limit')).json.alerts.map((a: Alert) => a.machine)).toEqual(['m5', 'm3', 'm1']);
    const from = new Date(T0 + 2 * 60_000).toISOString();
    const r = await call('GET', `/api/v1/alerts?from=${encodeURIComponent(from)}&to=${T0 + 4 * 60_000}`);
    expect(r.json.alerts.map((a: Alert) => a.machine)).toEqual(['m3', 'm2']);
    expect((await call('GET', '/api/v1/alerts?state=resolved')).json.alerts).toEqual([]);
    expect((await call('GET', '/api/v1/alerts?state=active&limit=500')).json.alerts).toHaveLength(8);
  });

  it('answers bad input with 400 JSON errors', async () => {
    for (const q of ['state=closed', 'limit=0', 'limit=501', 'from=yesterday', 'machine=a%20b', 'colour=red']) {
      const r = await call('GET', `/api/v1/alerts?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.error.code, q).toBe('BAD_REQUEST');
      expect(r.json.error.message, q).toMatch(/^querystring/);
    }
    const bad = await call('GET', '/api/v1/alerts?cursor=bm9wZQ');
    expect(bad).toMatchObject({ status: 400, json: { error: { code: 'BAD_CURSOR' } } });
  });
});

describe('single alert, ack and resolve', () => {
  it('GET /api/v1/alerts/:id returns the alert or 404 ALERT_NOT_FOUND', async () => {
    const id = h.engine.list({ limit: 1, machine: 'm0' }).alerts[0]!.id;
    const r = await call('GET', `/api/v1/alerts/${id}`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id, machine: 'm0', state: 'open', contributors: [{ metric: 'vibration_rms_mm_s' }] });
    const nf = await call('GET', '/api/v1/alerts/does-not-exist');
    expect(nf).toEqual({ status: 404, json: { error: { code: 'ALERT_NOT_FOUND', message: 'alert "does-not-exist" does not exist' } } });
  });

  it('acknowledges and resolves; illegal transitions are 409, bad bodies 400', async () => {
    const id = h.engine.list({ limit: 1, machine: 'm1' }).alerts[0]!.id;
    expect((await call('POST', `/api/v1/alerts/${id}/ack`, {})).json.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/^body\.who: /) });
    expect((await call('POST', `/api/v1/alerts/${id}/ack`, { who: 'Dana', extra: 1 })).status).toBe(400);
    const ack = await call('POST', `/api/v1/alerts/${id}/ack`, { who: 'Dana', note: 'looking' });
    expect(ack.status).toBe(200);
    expect(ack.json).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'Dana', ackNote: 'looking' });
    const again = await call('POST', `/api/v1/alerts/${id}/ack`, { who: 'Sam' });
    expect(again).toMatchObject({ status: 409, json: { error: { code: 'ALERT_ALREADY_ACKNOWLEDGED' } } });
    const res = await call('POST', `/api/v1/alerts/${id}/resolve`, { who: 'Dana', note: 'fixed' });
    expect(res.json).toMatchObject({ state: 'resolved', resolution: 'manual', resolvedBy: 'Dana' });
    expect(await call('POST', `/api/v1/alerts/${id}/resolve`, {})).toMatchObject({ status: 409, json: { error: { code: 'ALERT_ALREADY_RESOLVED' } } });
    expect(await call('POST', '/api/v1/alerts/nope/ack', { who: 'x' })).toMatchObject({ status: 404, json: { error: { code: 'ALERT_NOT_FOUND' } } });
    // resolve without a body at all is fine
    const id2 = h.engine.list({ limit: 1, machine: 'm2' }).alerts[0]!.id;
    const r2 = await fetch(`${base}/api/v1/alerts/${id2}/resolve`, { method: 'POST' });
    expect(r2.status).toBe(200);
    expect(((await r2.json()) as Alert).resolvedBy).toBeNull();
  });

  it('tags every route with its scope and documents it in OpenAPI', async () => {
    expect(routeScopes.get('GET /api/v1/alerts')).toBe('read');
    expect(routeScopes.get('GET /api/v1/alerts/:id')).toBe('read');
    expect(routeScopes.get('GET /api/v1/alerts/stream')).toBe('read');
    expect(routeScopes.get('POST /api/v1/alerts/:id/ack')).toBe('ack');
    expect(routeScopes.get('POST /api/v1/alerts/:id/resolve')).toBe('ack');
    const doc = app.swagger() as { paths: Record<string, Record<string, any>> };
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/api/v1/alerts',
      '/api/v1/alerts/stream',
      '/api/v1/alerts/{id}',
      '/api/v1/alerts/{id}/ack',
      '/api/v1/alerts/{id}/resolve',
    ]);
    const params = (doc.paths['/api/v1/alerts']!.get.parameters as Array<{ name: string }>).map((p) => p.name).sort();
    expect(params).toEqual(['cursor', 'from', 'kind', 'limit', 'machine', 'severity', 'state', 'to']);
    expect(doc.paths['/api/v1/alerts/{id}/ack']!.post.responses['409']).toBeDefined();
  });
});

interface SseClient {
  res: IncomingMessage;
  frames: string[];
  raw: () => string;
  close(): void;
}

async function openStream(query = '', headers: Record<string, string> = {}, at = base): Promise<SseClient | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(`${at}/api/v1/alerts/stream${query}`, { headers }, (res) => {
      let buf = '';
      let all = '';
      const frames: string[] = [];
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (c: string) => (buf += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: buf }));
        return;
      }
      res.on('data', (c: string) => {
        all += c;
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          frames.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      });
      resolve({ res, frames, raw: () => all, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

async function until(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('GET /api/v1/alerts/stream (SSE)', () => {
  it('streams transitions, sends heartbeats, refuses beyond maxClients and cleans up on disconnect', async () => {
    const a = await openStream();
    const b = await openStream('?machine=m9');
    if (!('res' in a) || !('res' in b)) throw new Error('stream refused');
    expect(a.res.headers['content-type']).toMatch(/^text\/event-stream/);
    await until(async () => (await metricValue(h.registry, 'smartops_alerts_stream_clients')) === 2, '2 clients');
    const refused = await openStream();
    expect(refused).toMatchObject({ status: 503 });
    expect(JSON.parse((refused as { body: string }).body)).toMatchObject({ error: { code: 'TOO_MANY_STREAMS' } });

    h.engine.onCondition(cond({ machine: 'm9', eventTs: T0 + 3600_000 }));
    h.engine.onCondition(cond({ machine: 'm8', eventTs: T0 + 3600_000 }));
    await until(() => a.frames.filter((f) => f.includes('data:')).length >= 2 && b.frames.some((f) => f.includes('data:')), 'events');
    const dataOf = (f: string) => JSON.parse(f.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as AlertTransition;
    const evA = a.frames.filter((f) => f.includes('data:')).map(dataOf);
    expect(evA.map((t) => [t.event, t.alert.machine])).toEqual([['opened', 'm9'], ['opened', 'm8']]);
    expect(a.frames.find((f) => f.includes('data:'))).toMatch(/^id: \d+\nevent: opened\ndata: /);
    expect(b.frames.filter((f) => f.includes('data:')).map(dataOf).map((t) => t.alert.machine)).toEqual(['m9']);

    // Heartbeat comment (interval 1 s in this test).
    await until(() => a.raw().includes(': heartbeat'), 'heartbeat');

    a.close();
    b.close();
    await until(async () => (await metricValue(h.registry, 'smartops_alerts_stream_clients')) === 0, 'cleanup');
    const c = await openStream();
    expect('res' in c).toBe(true);
    if ('res' in c) c.close();
    await until(async () => (await metricValue(h.registry, 'smartops_alerts_stream_clients')) === 0, 'cleanup');
  });

  it('ends open streams when the server closes', async () => {
    const s = await openStream();
    if (!('res' in s)) throw new Error('stream refused');
    const ended = new Promise<void>((r) => s.res.on('close', () => r()));
    const other = Fastify();
    other.setValidatorCompiler(validatorCompiler);
    other.setSerializerCompiler(serializerCompiler);
    await other.register(alertRoutes({ engine: h.engine }));
    await other.listen({ host: '127.0.0.1', port: 0 });
    const port = (other.server.address() as AddressInfo).port;
    const s2 = await new Promise<IncomingMessage>((resolve, reject) => get(`http://127.0.0.1:${port}/api/v1/alerts/stream`, resolve).on('error', reject));
    const ended2 = new Promise<void>((r) => s2.on('close', () => r()));
    s2.resume();
    await other.close(); // must not hang on the open stream
    await ended2;
    s.close();
    await ended;
  });
});

describe('GET /api/v1/alerts/stream: reconnecting with Last-Event-ID', () => {
  const dataOf = (f: string) => JSON.parse(f.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as AlertTransition;
  const idOf = (f: string) => Number(/^id: (\d+)$/m.exec(f)?.[1]);
  const events = (c: SseClient) => c.frames.filter((f) => f.includes('data:'));
  /** The stream's last event id once its opening frames are in: the `id:` block that closes them. */
  const startId = async (c: SseClient): Promise<number> => {
    await until(() => c.frames.some((f) => /^id: \d+$/.test(f)), 'the opening id');
    return idOf(c.frames.find((f) => /^id: \d+$/.test(f))!);
  };
  async function serve(engine: Harness['engine']): Promise<{ at: string; close: () => Promise<void> }> {
    const other = Fastify();
    other.setValidatorCompiler(validatorCompiler);
    other.setSerializerCompiler(serializerCompiler);
    await other.register(alertRoutes({ engine }));
    await other.listen({ host: '127.0.0.1', port: 0 });
    return { at: `http://127.0.0.1:${(other.server.address() as AddressInfo).port}`, close: () => other.close() };
  }

  it('gets the transitions it missed, in order and as they were then, then live ones; filters apply', async () => {
    const first = await openStream();
    if (!('res' in first)) throw new Error('stream refused');
    // A fresh stream's last event id is the newest transition's, though it has seen no event.
    const lastId = await startId(first);
    first.close();
    await until(async () => (await metricValue(h.registry, 'smartops_alerts_stream_clients')) === 0, 'cleanup');

    h.engine.onCondition(cond({ machine: 'r1', eventTs: T0 + 7200_000 }));
    h.engine.onCondition(cond({ machine: 'r2', eventTs: T0 + 7200_000, kind: 'limit' }));
    const r1 = (await call('GET', '/api/v1/alerts?machine=r1')).json.alerts[0] as Alert;
    h.engine.ack(r1.id, { who: 'Dana' });

    const back = await openStream('', { 'last-event-id': String(lastId) });
    if (!('res' in back)) throw new Error('stream refused');
    await until(() => events(back).length >= 3, 'the missed transitions');
    const missed = events(back).map(dataOf);
    expect(missed.map((t) => [t.event, t.alert.machine, t.alert.state])).toEqual([
      ['opened', 'r1', 'open'],
      ['opened', 'r2', 'open'],
      ['acknowledged', 'r1', 'acknowledged'],
    ]);
    expect(missed.map((t) => t.seq)).toEqual([lastId + 1, lastId + 2, lastId + 3]);
    expect(events(back).map(idOf)).toEqual([lastId + 1, lastId + 2, lastId + 3]);
    // Then live.
    h.engine.onCondition(cond({ machine: 'r3', eventTs: T0 + 7200_000 }));
    await until(() => events(back).length === 4, 'the live transition');
    expect(dataOf(events(back)[3]!)).toMatchObject({ seq: lastId + 4, event: 'opened', alert: { machine: 'r3' } });
    back.close();

    // The query parameter does the same for clients that cannot set headers, and the filters apply.
    const filtered = await openStream(`?lastEventId=${lastId}&kind=limit`);
    if (!('res' in filtered)) throw new Error('stream refused');
    await startId(filtered);
    expect(events(filtered).map(dataOf).map((t) => [t.event, t.alert.machine])).toEqual([['opened', 'r2']]);
    expect(await startId(filtered)).toBe(lastId + 4);
    filtered.close();
    await until(async () => (await metricValue(h.registry, 'smartops_alerts_stream_clients')) === 0, 'cleanup');
  });

  it('gets an event gap when some may be missing: older than the log, before a restart, or not an id of ours', async () => {
    const small = await startAlerts({ stream: { replay: 2 } });
    const srv = await serve(small.engine);
    try {
      const s = await openStream('', {}, srv.at);
      if (!('res' in s)) throw new Error('stream refused');
      const lastId = await startId(s);
      s.close();
      for (let i = 0; i < 3; i++) small.engine.onCondition(cond({ machine: `g${i}`, eventTs: T0 }));
      const gapFor = async (headers: Record<string, string>): Promise<{ id: number; data: { lastEventId: string; message: string } }> => {
        const c = await openStream('', headers, srv.at);
        if (!('res' in c)) throw new Error('stream refused');
        await until(() => c.frames.some((f) => f.includes('event: gap')), 'the gap event');
        const f = c.frames.find((x) => x.includes('event: gap'))!;
        c.close();
        expect(c.frames.filter((x) => x.includes('event: opened'))).toEqual([]);
        return { id: idOf(f), data: JSON.parse(f.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) };
      };
      // Three transitions since, two kept: the first is gone.
      const g = await gapFor({ 'last-event-id': String(lastId) });
      expect(g.id).toBe(lastId + 3); // resumes from the newest on the next reconnect
      expect(g.data).toEqual({ lastEventId: String(lastId), message: expect.stringContaining('re-read GET /api/v1/alerts') });
      // One back is still complete.
      const ok = await openStream('', { 'last-event-id': String(lastId + 1) }, srv.at);
      if (!('res' in ok)) throw new Error('stream refused');
      await until(() => events(ok).length === 2, 'the two kept');
      expect(events(ok).map(dataOf).map((t) => t.alert.machine)).toEqual(['g1', 'g2']);
      ok.close();
      // An id from before this process started, one never sent, and a header that is not an id.
      expect((await gapFor({ 'last-event-id': '5' })).data.lastEventId).toBe('5');
      expect((await gapFor({ 'last-event-id': String(lastId + 99) })).id).toBe(lastId + 3);
      expect((await gapFor({ 'last-event-id': 'abc' })).data.lastEventId).toBe('abc');
    } finally {
      await srv.close();
      await small.cleanup();
    }
    // The query parameter, unlike the header, is checked.
    const bad = await openStream('?lastEventId=abc');
    expect(bad).toMatchObject({ status: 400 });
    expect(JSON.parse((bad as { body: string }).body)).toEqual({ error: { code: 'BAD_REQUEST', message: 'querystring.lastEventId: expected an event id of this stream (digits)' } });
  });

  it('transition ids keep increasing across a restart', async () => {
    const a = await startAlerts();
    const seqs: number[] = [];
    a.engine.subscribe((t) => seqs.push(t.seq));
    a.engine.onCondition(cond({ machine: 'x1' }));
    await a.engine.close();
    await sleep(2);
    const b = await startAlerts({}, { dataDir: a.dataDir });
    b.engine.subscribe((t) => seqs.push(t.seq));
    b.engine.onCondition(cond({ machine: 'x2' }));
    await b.cleanup();
    expect(seqs).toHaveLength(2);
    expect(seqs[1]!).toBeGreaterThan(seqs[0]!);
  });
});
