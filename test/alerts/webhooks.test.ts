/**
 * Webhooks against a real HTTP server on loopback. The back-off sleep is the real timer, wrapped
 * only to record the delays asked for (so the test can check them without timing assertions
 * beyond "the retry did not arrive before its delay").
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { webhookSchema } from '../../gateway/src/alerts/config.js';
import { createAlertsMetrics } from '../../gateway/src/alerts/metrics.js';
import type { AlertTransition } from '../../gateway/src/alerts/types.js';
import { backoffDelay, type WebhookPayload, WebhookSender } from '../../gateway/src/alerts/webhooks.js';
import { cond, metricValue, startAlerts, T0, type Harness } from './helpers.js';

interface Received {
  at: number;
  headers: IncomingMessage['headers'];
  body: WebhookPayload;
}

type Responder = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function startReceiver(respond: Responder): Promise<{ url: string; got: Received[]; server: Server; close(): Promise<void> }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ at: performance.now(), headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebhookPayload });
      respond(req, res, got.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    got,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function untilAsync(pred: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function transition(seq: number, severity: 'info' | 'warning' | 'critical' = 'warning'): AlertTransition {
  return {
    seq,
    event: 'opened',
    at: T0,
    alert: {
      id: `a${seq}`, machine: 'm1', kind: 'anomaly', severity, state: 'open', message: `alert ${seq}`, startedAt: T0, openedAt: T0, updatedAt: T0,
      score: 5, peakScore: 5, threshold: 3, peakAt: T0, contributors: [], contributorsText: '', updateCount: 0, acknowledgedAt: null,
      acknowledgedBy: null, ackNote: null, resolvedAt: null, resolvedBy: null, resolveNote: null, resolution: null,
    },
  };
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function sender(url: string, over: Record<string, unknown> = {}) {
  const registry = new Registry();
  const metrics = createAlertsMetrics(registry, () => []);
  const delays: number[] = [];
  const s = new WebhookSender(webhookSchema.parse({ url, ...over }), 'test', {
    logger: pino({ level: 'silent' }),
    metrics,
    sleep: async (ms, signal) => {
      delays.push(ms);
      await sleep(ms, undefined, { signal });
    },
    random: () => 0.5,
  });
  cleanups.push(() => s.close());
  return { s, registry, delays };
}

describe('webhooks', () => {
  it('retries on 500 with exponential back-off, then succeeds; same delivery id on every attempt', async () => {
    const rx = await startReceiver((_req, res, n) => {
      res.statusCode = n <= 2 ? 500 : 204;
      res.end();
    });
    cleanups.push(rx.close);
    const { s, registry, delays } = sender(rx.url, { initialBackoffMs: 40, maxBackoffMs: 1000, headers: { Authorization: 'Bearer t0ken' } });
    s.enqueue(transition(1));
    await until(() => s.stats.delivered === 1, 'delivery');
    expect(rx.got).toHaveLength(3);
    // random = 0.5 -> 3/4 of the nominal delay: 40 ms then 80 ms nominal.
    expect(delays).toEqual([30, 60]);
    expect(backoffDelay(3, 40, 1000, 0.5)).toBe(120);
    // Back-off honoured: each retry arrived no earlier than the delay asked for (timer granularity 2 ms).
    expect(rx.got[1]!.at - rx.got[0]!.at).toBeGreaterThanOrEqual(30 - 2);
    expect(rx.got[2]!.at - rx.got[1]!.at).toBeGreaterThanOrEqual(60 - 2);
    const ids = new Set(rx.got.map((g) => g.headers['x-smartops-delivery']));
    expect(ids.size).toBe(1);
    expect(rx.got[0]!.headers.authorization).toBe('Bearer t0ken');
    expect(rx.got[0]!.headers['content-type']).toBe('application/json');
    expect(rx.got[2]!.body).toMatchObject({ event: 'opened', alert: { id: 'a1' }, text: '[warning] m1 anomaly alert opened: alert 1' });
    expect(await metricValue(registry, 'smartops_alerts_webhook_attempts_total', { outcome: 'http_error' })).toBe(2);
    expect(await metricValue(registry, 'smartops_alerts_webhook_attempts_total', { outcome: 'ok' })).toBe(1);
    expect(await metricValue(registry, 'smartops_alerts_webhook_dropped_total')).toBe(0);
  });

  it('caps the back-off at maxBackoffMs and honours Retry-After', () => {
    expect([1, 2, 3, 4, 5].map((r) => backoffDelay(r, 1000, 5000, 0))).toEqual([500, 1000, 2000, 2500, 2500]);
    expect([1, 2, 3, 4, 5].map((r) => backoffDelay(r, 1000, 5000, 0.999999))).toEqual([1000, 2000, 4000, 5000, 5000]);
  });

  it('uses Retry-After when it asks for longer than the back-off', async () => {
    const rx = await startReceiver((_req, res, n) => {
      if (n === 1) res.setHeader('retry-after', '1');
      res.statusCode = n === 1 ? 429 : 200;
      res.end();
    });
    cleanups.push(rx.close);
    const { s, delays } = sender(rx.url, { initialBackoffMs: 10 });
    s.enqueue(transition(1));
    await until(() => s.stats.delivered === 1, 'delivery');
    expect(delays).toEqual([1000]);
  });

  it('gives up after maxAttempts and on a non-retryable 4xx, counting the drop', async () => {
    const rx = await startReceiver((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    cleanups.push(rx.close);
    const { s, registry } = sender(rx.url, { initialBackoffMs: 1, maxAttempts: 3 });
    s.enqueue(transition(1));
    await until(() => s.stats.dropped === 1, 'drop');
    expect(rx.got).toHaveLength(3);
    expect(await metricValue(registry, 'smartops_alerts_webhook_dropped_total', { reason: 'attempts_exhausted' })).toBe(1);

    const rx2 = await startReceiver((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    cleanups.push(rx2.close);
    const b = sender(rx2.url, { initialBackoffMs: 1 });
    b.s.enqueue(transition(1));
    await until(() => b.s.stats.dropped === 1, 'drop');
    expect(rx2.got).toHaveLength(1);
    expect(await metricValue(b.registry, 'smartops_alerts_webhook_dropped_total', { reason: 'rejected' })).toBe(1);
  });

  it('retries after a timeout', async () => {
    const rx = await startReceiver((_req, res, n) => {
      if (n === 1) return; // never answer the first attempt
      res.end();
    });
    cleanups.push(rx.close);
    const { s, registry } = sender(rx.url, { initialBackoffMs: 1, timeoutMs: 200 });
    s.enqueue(transition(1));
    await until(() => s.stats.delivered === 1, 'delivery');
    expect(await metricValue(registry, 'smartops_alerts_webhook_attempts_total', { outcome: 'timeout' })).toBe(1);
  });

  it('bounds the queue: the oldest waiting transitions are dropped and counted, the newest delivered in order', async () => {
    const held: ServerResponse[] = [];
    let holding = true;
    const rx = await startReceiver((_req, res) => {
      if (holding) held.push(res);
      else res.end();
    });
    cleanups.push(rx.close);
    const { s, registry } = sender(rx.url, { queueSize: 2, timeoutMs: 30_000 });
    for (let i = 1; i <= 5; i++) s.enqueue(transition(i));
    // #1 is in flight, #2 and #3 were pushed out by #4 and #5.
    expect(s.stats.dropped).toBe(2);
    expect(s.depth).toBe(3);
    expect(await metricValue(registry, 'smartops_alerts_webhook_dropped_total', { reason: 'queue_full' })).toBe(2);
    expect(await metricValue(registry, 'smartops_alerts_webhook_queue_depth')).toBe(3);
    // Release the receiver: it answers every request from now on.
    await until(() => held.length === 1, 'first request');
    holding = false;
    held.shift()!.end();
    await until(() => s.stats.delivered === 3, 'all delivered');
    expect(rx.got.map((g) => g.body.alert.id)).toEqual(['a1', 'a4', 'a5']);
    expect(await metricValue(registry, 'smartops_alerts_webhook_queue_depth')).toBe(0);
  });

  it('filters by minimum severity and counts undelivered transitions at shutdown', async () => {
    const held: ServerResponse[] = [];
    const rx = await startReceiver((_req, res) => {
      held.push(res);
    });
    cleanups.push(rx.close);
    const { s, registry } = sender(rx.url, { minSeverity: 'critical' });
    s.enqueue(transition(1, 'warning'));
    expect(s.depth).toBe(0);
    s.enqueue(transition(2, 'critical'));
    s.enqueue(transition(3, 'critical'));
    await until(() => held.length === 1, 'request');
    await s.close();
    expect(await metricValue(registry, 'smartops_alerts_webhook_dropped_total', { reason: 'shutdown' })).toBe(2);
    for (const r of held) r.end();
  });

  it('sends opened/acknowledged/resolved and severity escalations by default, not every peak update', () => {
    const { s } = sender('http://127.0.0.1:9/unused');
    const upd = (reason: 'peak' | 'severity'): AlertTransition => ({ ...transition(1), event: 'updated', reason });
    expect(s.accepts({ ...transition(1), event: 'resolved' })).toBe(true);
    expect(s.accepts(upd('peak'))).toBe(false);
    expect(s.accepts(upd('severity'))).toBe(true);
    const all = sender('http://127.0.0.1:9/unused', { events: ['opened', 'updated'], escalations: false }).s;
    expect(all.accepts(upd('peak'))).toBe(true);
    expect(all.accepts({ ...transition(1), event: 'resolved' })).toBe(false);
    expect(webhookSchema.safeParse({ url: 'ftp://example.com/x' }).success).toBe(false);
    expect(webhookSchema.safeParse({ url: 'not a url' }).success).toBe(false);
  });

  it('never delays the lifecycle: the engine fans out to a failing webhook and goes on', async () => {
    const rx = await startReceiver((_req, res) => {
      res.statusCode = 500;
      res.end();
    });
    cleanups.push(rx.close);
    const h: Harness = await startAlerts({ webhooks: [{ name: 'ops', url: rx.url, initialBackoffMs: 5, maxAttempts: 2 }] });
    cleanups.push(() => h.cleanup());
    h.engine.onCondition(cond());
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h.engine.ack(id, { who: 'Dana' });
    expect(h.engine.get(id)!.state).toBe('acknowledged');
    await until(() => rx.got.length === 4, '2 attempts per transition');
    expect(rx.got.map((g) => g.body.event).sort()).toEqual(['acknowledged', 'acknowledged', 'opened', 'opened']);
    await untilAsync(
      async () => (await metricValue(h.registry, 'smartops_alerts_webhook_dropped_total', { webhook: 'ops', reason: 'attempts_exhausted' })) === 2,
      'drops counted',
    );
  });
});
