/**
 * The InfluxDB 1.x sink's HTTP exchange (node:http, http-post.ts). A stand-in server plays /write so
 * the test can answer with statuses, headers and hangs that a healthy InfluxDB never gives; the
 * real InfluxDB round trip is in influx.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { HttpPoster } from '../../gateway/src/sinks/http-post.js';
import { InfluxV1Sink } from '../../gateway/src/sinks/influx-v1.js';
import { readingToLine } from '../../gateway/src/sinks/lineprotocol.js';

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;

describe('InfluxDB 1.x sink over HTTP (stand-in server)', () => {
  let server: Server;
  let url = '';
  let connections = 0;
  let handler: Handler = (_req, _body, res) => {
    res.writeHead(204);
    res.end();
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handler(req, Buffer.concat(chunks), res));
    });
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  const sink = (timeoutMs = 5000): InfluxV1Sink => new InfluxV1Sink({ url, database: 'shop', createDatabase: false, timeoutMs, tagsFor: () => undefined });
  const readings: Reading[] = Array.from({ length: 500 }, (_, i) => ({ machine: `cnc-${i % 7}`, ts: 1700000000000 + i, metrics: { temp_c: 40 + i / 100, rpm: i } }));

  it('posts the batch to /write with db and precision=ms and a content length, over one kept-alive connection', async () => {
    const seen: { path: string; length: string | undefined; body: string }[] = [];
    handler = (req, body, res) => {
      seen.push({ path: req.url ?? '', length: req.headers['content-length'], body: body.toString('utf8') });
      res.writeHead(204);
      res.end();
    };
    connections = 0;
    const s = sink();
    for (let i = 0; i < 5; i++) expect(await s.write(readings)).toEqual({ ok: true });
    const expected = readings.map((r) => readingToLine(r)).join('\n');
    expect(seen).toHaveLength(5);
    for (const x of seen) {
      expect(x.path).toBe('/write?db=shop&precision=ms');
      expect(x.body).toBe(expected);
      expect(x.length).toBe(String(Buffer.byteLength(expected)));
    }
    // Keep-alive: five batches, one TCP connection (not a handshake per batch).
    expect(connections).toBe(1);
    await s.close();
  });

  it('maps statuses: 429 with Retry-After to a timed retry, 413 to too_large, 400 to rejected with InfluxDB\'s message, 503 to retry', async () => {
    const answers: [number, Record<string, string>, string][] = [
      [429, { 'retry-after': '7' }, '{"error":"too many requests"}'],
      [413, {}, '{"error":"Request Entity Too Large"}'],
      [400, {}, '{"error":"partial write: field type conflict: input field \\"rpm\\" on measurement \\"telemetry\\" is type float, already exists as type integer dropped=1"}'],
      [503, {}, ''],
    ];
    handler = (_req, _body, res) => {
      const [status, headers, text] = answers.shift() as [number, Record<string, string>, string];
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(text);
    };
    const s = sink();
    expect(await s.write(readings)).toMatchObject({ ok: false, kind: 'retry', retryAfterMs: 7000 });
    expect(await s.write(readings)).toMatchObject({ ok: false, kind: 'too_large' });
    const rejected = await s.write(readings);
    expect(rejected).toMatchObject({ ok: false, kind: 'rejected' });
    expect(rejected.ok === false && rejected.message).toContain('field type conflict');
    expect(await s.write(readings)).toMatchObject({ ok: false, kind: 'retry' });
    await s.close();
  });

  it('keeps at most 64 KiB of a response body: an error is a sentence, not a download', async () => {
    handler = (_req, _body, res) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('x'.repeat(1024 * 1024));
    };
    const poster = new HttpPoster();
    const res = await poster.post(new URL(`${url}/write?db=shop`), {}, 'telemetry v=1 1', AbortSignal.timeout(5000));
    expect(res.status).toBe(400);
    expect(res.text).toBe('x'.repeat(64 * 1024));
    poster.close();
  });

  it('gives up on a server that never answers after timeoutMs, as a retry', async () => {
    handler = () => undefined; // read the request, never respond
    const s = sink(300);
    const t0 = Date.now();
    const out = await s.write(readings);
    expect(out).toMatchObject({ ok: false, kind: 'retry' });
    expect(Date.now() - t0).toBeLessThan(5000);
    await s.close();
    server.closeAllConnections();
  });

  it('reports a server that is not there as unreachable, naming the URL', async () => {
    const dead = new InfluxV1Sink({ url: 'http://127.0.0.1:1', database: 'shop', createDatabase: false, timeoutMs: 2000, tagsFor: () => undefined });
    const out = await dead.write(readings);
    expect(out).toMatchObject({ ok: false, kind: 'retry' });
    expect(out.ok === false && out.message).toContain('InfluxDB unreachable at http://127.0.0.1:1');
    await dead.close();
  });
});
