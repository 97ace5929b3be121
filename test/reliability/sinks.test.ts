/**
 * Sink building blocks the forwarder relies on: aborting a write that hangs (stand-in: a TCP
 * server that accepts and never answers, i.e. a hung InfluxDB), Retry-After parsing and the
 * back-off schedule (pure functions, no timing).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backoffDelay } from '../../gateway/src/sinks/forwarder.js';
import { InfluxV1Sink } from '../../gateway/src/sinks/influx-v1.js';
import { InfluxV2Sink } from '../../gateway/src/sinks/influx-v2.js';
import { outcomeForStatus, parseRetryAfter } from '../../gateway/src/sinks/sink.js';

describe('sinks', () => {
  let hole: Server;
  let url = '';
  const held: Socket[] = [];

  beforeAll(async () => {
    hole = createServer((s) => {
      held.push(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(hole.address() as { port: number }).port}`;
  });
  afterAll(() => {
    for (const s of held) s.destroy();
    hole.close();
  });

  const reading = [{ machine: 'press-01', ts: 1_700_000_000_000, metrics: { v: 1 } }];

  it('InfluxDB 1.x: a hung write ends as a retry when aborted (and init does not wait for the server)', async () => {
    const sink = new InfluxV1Sink({ url, database: 'x', createDatabase: true, timeoutMs: 600_000, tagsFor: () => undefined });
    await sink.init(); // returns although the server never answers
    const ac = new AbortController();
    const out = sink.write(reading, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await out).toMatchObject({ ok: false, kind: 'retry' });
  });

  it('InfluxDB 2.x: a hung write ends as a retry when aborted', async () => {
    const sink = new InfluxV2Sink({ url, org: 'o', bucket: 'b', token: 't', timeoutMs: 600_000, tagsFor: () => undefined });
    const ac = new AbortController();
    const out = sink.write(reading, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await out).toMatchObject({ ok: false, kind: 'retry', message: expect.stringContaining('aborted') });
  });

  it('Retry-After: delay-seconds and HTTP-date (RFC 9110 10.2.3); junk is ignored', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('status mapping: 413 split, 400/422 quarantine, everything else retried', () => {
    expect(outcomeForStatus(204, '')).toEqual({ ok: true });
    expect(outcomeForStatus(413, 'too big')).toMatchObject({ kind: 'too_large' });
    expect(outcomeForStatus(400, 'field type conflict')).toMatchObject({ kind: 'rejected' });
    expect(outcomeForStatus(422, 'unprocessable')).toMatchObject({ kind: 'rejected' });
    for (const s of [401, 403, 404, 408, 500, 502, 503]) expect(outcomeForStatus(s, '')).toMatchObject({ kind: 'retry' });
    expect(outcomeForStatus(429, '', '7')).toMatchObject({ kind: 'retry', retryAfterMs: 7000 });
  });

  it('back-off: doubles from retryInitialMs to retryMaxMs with jitter in [step/2, step]; Retry-After wins, within a cap', () => {
    const o = { retryInitialMs: 500, retryMaxMs: 60_000 };
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, o, undefined, 1))).toEqual([500, 1000, 2000, 4000]);
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, o, undefined, 0))).toEqual([250, 500, 1000, 2000]);
    expect(backoffDelay(40, o, undefined, 1)).toBe(60_000);
    expect(backoffDelay(0, o, 10_000, 0.5)).toBe(10_000);
    // A Retry-After of a day is honoured only up to max(retryMaxMs, 5 min).
    expect(backoffDelay(0, o, 86_400_000, 0.5)).toBe(300_000);
  });
});
