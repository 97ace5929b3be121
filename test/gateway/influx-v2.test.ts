/**
 * InfluxDB 2.x write path. No InfluxDB 2 server can run here (no package, no Docker engine), so a
 * small HTTP server in the test plays its /api/v2/write endpoint and checks every request.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { InfluxV2Sink } from '../../gateway/src/sinks/influx-v2.js';
import { readingToLine } from '../../gateway/src/sinks/lineprotocol.js';

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  auth: string | undefined;
  encoding: string | undefined;
  body: string;
}

describe('InfluxDB 2.x sink (stand-in server: no InfluxDB 2 can run here)', () => {
  let server: Server;
  let url = '';
  const seen: Seen[] = [];
  let nextStatus: { status: number; headers?: Record<string, string>; body?: string }[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let buf = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') buf = gunzipSync(buf);
        const u = new URL(req.url ?? '/', 'http://x');
        seen.push({ method: req.method ?? '', path: u.pathname, query: u.searchParams, auth: req.headers.authorization, encoding: req.headers['content-encoding'], body: buf.toString('utf8') });
        const next = nextStatus.shift() ?? { status: 204 };
        res.writeHead(next.status, { 'content-type': 'application/json', ...(next.headers ?? {}) });
        res.end(next.body ?? '');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const sink = (): InfluxV2Sink =>
    new InfluxV2Sink({ url, org: 'shop floor', bucket: 'smartops', token: 'tok-123', timeoutMs: 2000, tagsFor: (m) => (m === 'cnc-01' ? { site: 'a b' } : undefined) });

  it('posts line protocol to /api/v2/write with org, bucket, precision=ms and a Token header', async () => {
    seen.length = 0;
    const out = await sink().write([
      { machine: 'cnc-01', ts: 1700000000123, metrics: { temp_c: 41.5 } },
      { machine: 'pump-07', ts: 1700000000124, metrics: { flow: 30, 'p,x': 1 } },
    ]);
    expect(out).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    const s = seen[0] as Seen;
    expect(s.method).toBe('POST');
    expect(s.path).toBe('/api/v2/write');
    expect(s.query.get('org')).toBe('shop floor');
    expect(s.query.get('bucket')).toBe('smartops');
    expect(s.query.get('precision')).toBe('ms');
    expect(s.auth).toBe('Token tok-123');
    expect(s.body.split('\n')).toEqual([
      'telemetry,machine=cnc-01,site=a\\ b temp_c=41.5 1700000000123',
      'telemetry,machine=pump-07 flow=30,p\\,x=1 1700000000124',
    ]);
  });

  it('sends a whole batch as one request whose body is every line, multi-byte names included, exactly as readingToLine writes it', async () => {
    // The body goes to the client as one record (TelemetryLines.encode, then UTF-8 text): the bytes
    // that arrive must be the lines joined by newlines, with nothing dropped, split or re-encoded.
    const tagsFor = (m: string): Record<string, string> | undefined => (m.startsWith('p') ? { site: 'Halle Süd, 3' } : undefined);
    const readings: Reading[] = Array.from({ length: 3000 }, (_, i) => ({
      machine: i % 2 ? `press ${i % 13},a=b` : `cnc-${i % 17}-✓`,
      ts: 1700000000000 + i,
      metrics: { 'ünï✓,=x': i / 7, temp_c: 40 + (i % 100) / 10, count: i, time: -i },
    }));
    seen.length = 0;
    const s = new InfluxV2Sink({ url, org: 'o', bucket: 'b', token: 't', timeoutMs: 5000, tagsFor });
    expect(await s.write(readings)).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    expect((seen[0] as Seen).body).toBe(readings.map((r) => readingToLine(r, tagsFor(r.machine))).join('\n'));
  });

  it('sends bodies uncompressed unless influx.gzip is on, then gzips those of 1,000 bytes or more', async () => {
    const readings = Array.from({ length: 200 }, (_, i) => ({ machine: 'press-1', ts: 1700000000000 + i, metrics: { temp_c: 40 + i / 100 } }));
    const lines = readings.map((r) => `telemetry,machine=press-1 temp_c=${r.metrics.temp_c} ${r.ts}`);
    seen.length = 0;
    expect(await sink().write(readings)).toEqual({ ok: true });
    const zipped = new InfluxV2Sink({ url, org: 'o', bucket: 'b', token: 't', timeoutMs: 2000, gzip: true, tagsFor: () => undefined });
    expect(await zipped.write(readings)).toEqual({ ok: true });
    // A small body is not worth compressing.
    expect(await zipped.write(readings.slice(0, 2))).toEqual({ ok: true });
    expect(seen.map((x) => x.encoding)).toEqual([undefined, 'gzip', undefined]);
    expect(seen.map((x) => x.body.split('\n'))).toEqual([lines, lines, lines.slice(0, 2)]);
    // The edge, as the 1.x sink has it: a body of 1,000 bytes is compressed, one of 999 is not
    // (the line is 36 bytes plus the machine id).
    seen.length = 0;
    for (const n of [1000, 999]) expect(await zipped.write([{ machine: 'a'.repeat(n - 36), ts: 1700000000000, metrics: { v: 1 } }])).toEqual({ ok: true });
    expect(seen.map((x) => [Buffer.byteLength(x.body), x.encoding])).toEqual([[1000, 'gzip'], [999, undefined]]);
  });

  it('maps 429 with Retry-After to retry, 413 to too_large, 400 to rejected, and a dead server to retry', async () => {
    nextStatus = [{ status: 429, headers: { 'retry-after': '7' }, body: '{"code":"too many requests","message":"slow down"}' }];
    expect(await sink().write([{ machine: 'm', ts: 1, metrics: { a: 1 } }])).toMatchObject({ ok: false, kind: 'retry', retryAfterMs: 7000 });
    nextStatus = [{ status: 413, body: '{"code":"request too large","message":"too big"}' }];
    expect(await sink().write([{ machine: 'm', ts: 1, metrics: { a: 1 } }])).toMatchObject({ ok: false, kind: 'too_large' });
    nextStatus = [{ status: 400, body: '{"code":"invalid","message":"unable to parse"}' }];
    expect(await sink().write([{ machine: 'm', ts: 1, metrics: { a: 1 } }])).toMatchObject({ ok: false, kind: 'rejected' });
    nextStatus = [{ status: 503, body: '{"code":"unavailable","message":"x"}' }];
    expect(await sink().write([{ machine: 'm', ts: 1, metrics: { a: 1 } }])).toMatchObject({ ok: false, kind: 'retry' });
    const dead = new InfluxV2Sink({ url: 'http://127.0.0.1:1', org: 'o', bucket: 'b', token: 't', timeoutMs: 1000, tagsFor: () => undefined });
    expect(await dead.write([{ machine: 'm', ts: 1, metrics: { a: 1 } }])).toMatchObject({ ok: false, kind: 'retry' });
  });
});
