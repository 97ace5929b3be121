/**
 * Webhook delivery: one bounded queue and one sequential worker per configured URL (so a receiver
 * sees the transitions of an alert in order), retries with exponential back-off and jitter.
 *
 * Logs name the webhook, never its URL or headers: chat webhook URLs carry their secret in the path.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleepTimer } from 'node:timers/promises';
import type { Logger } from 'pino';
import { severityRank, type WebhookConfig } from './config.js';
import type { AlertsMetrics } from './metrics.js';
import type { AlertTransition } from './types.js';

export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export interface WebhookDeps {
  logger: Logger;
  metrics: AlertsMetrics;
  /** Injected by tests to observe the back-off delays; defaults to a real (abortable) timer. */
  sleep?: Sleep;
  /** Jitter source in [0, 1); injectable for tests. */
  random?: () => number;
}

/** The JSON body POSTed for each transition. */
export interface WebhookPayload extends AlertTransition {
  /** One line for chat tools that display a `text` field (e.g. Slack incoming webhooks). */
  text: string;
}

interface Item {
  deliveryId: string;
  body: string;
  event: string;
}

type Outcome = { kind: 'ok' } | { kind: 'retry'; reason: string; retryAfterMs?: number } | { kind: 'reject'; reason: string };

const defaultSleep: Sleep = async (ms, signal) => {
  await sleepTimer(ms, undefined, { signal });
};

export function payloadOf(t: AlertTransition): WebhookPayload {
  const a = t.alert;
  return { ...t, text: `[${a.severity}] ${a.machine} ${a.kind} alert ${t.event}: ${a.message}` };
}

/**
 * Delay before retry number `retry` (1 = first retry): nominal = min(max, initial * 2^(retry-1)),
 * "equal jitter" = nominal/2 + random * nominal/2, so the wait is never below half the nominal
 * delay (back-off is honoured) yet receivers recovering from an outage are not hit in lockstep.
 */
export function backoffDelay(retry: number, initialMs: number, maxMs: number, random: number): number {
  const nominal = Math.min(maxMs, initialMs * 2 ** (retry - 1));
  return Math.round(nominal / 2 + random * (nominal / 2));
}

function parseRetryAfter(h: string | null): number | undefined {
  if (!h) return undefined;
  const s = Number(h);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const d = Date.parse(h);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : undefined;
}

export class WebhookSender {
  private readonly queue: Item[] = [];
  private inflight: Item | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private readonly stop = new AbortController();
  private readonly sleep: Sleep;
  private readonly random: () => number;
  /** Counters readable by tests and the facade. */
  readonly stats = { delivered: 0, dropped: 0, attempts: 0 };

  constructor(
    readonly cfg: WebhookConfig,
    readonly name: string,
    private readonly deps: WebhookDeps,
  ) {
    this.sleep = deps.sleep ?? defaultSleep;
    this.random = deps.random ?? Math.random;
    deps.metrics.webhookQueueDepth.set({ webhook: name }, 0);
  }

  /** Queued plus in flight. */
  get depth(): number {
    return this.queue.length + (this.inflight ? 1 : 0);
  }

  accepts(t: AlertTransition): boolean {
    if (severityRank(t.alert.severity) < severityRank(this.cfg.minSeverity)) return false;
    return this.cfg.events.includes(t.event) || (t.event === 'updated' && t.reason === 'severity' && this.cfg.escalations);
  }

  enqueue(t: AlertTransition): void {
    if (!this.accepts(t)) return;
    if (this.closed) {
      this.drop('shutdown', 1);
      return;
    }
    // Drop the oldest waiting transition: the newest carries the alert's current state.
    if (this.queue.length >= this.cfg.queueSize) {
      this.queue.shift();
      this.drop('queue_full', 1);
    }
    this.queue.push({ deliveryId: randomUUID(), body: JSON.stringify(payloadOf(t)), event: t.event });
    this.gauge();
    if (!this.running) this.running = this.run(); // queue is non-empty here, see run()
  }

  private gauge(): void {
    this.deps.metrics.webhookQueueDepth.set({ webhook: this.name }, this.depth);
  }

  private drop(reason: 'queue_full' | 'attempts_exhausted' | 'rejected' | 'shutdown', n: number, detail?: string): void {
    this.stats.dropped += n;
    this.deps.metrics.webhookDropped.inc({ webhook: this.name, reason }, n);
    this.deps.metrics.notifications.inc({ sink: 'webhook', outcome: 'dropped' }, n);
    this.deps.logger.warn({ webhook: this.name, reason, count: n, detail }, `webhook ${this.name}: dropped ${n} alert transition(s) (${reason})`);
  }

  // The first statement runs synchronously from enqueue(), so the item is in flight before enqueue returns.
  // `running` is cleared in the same synchronous step that finds the queue empty, so an enqueue
  // can never slip in between and be left without a worker.
  private async run(): Promise<void> {
    for (;;) {
      const item = this.closed ? undefined : this.queue.shift();
      if (!item) {
        this.running = null;
        return;
      }
      this.inflight = item;
      try {
        await this.deliver(item);
      } finally {
        this.inflight = null;
        this.gauge();
      }
    }
  }

  private async deliver(item: Item): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const out = await this.attempt(item);
      if (this.closed) return; // counted by close()
      if (out.kind === 'ok') {
        this.stats.delivered++;
        this.deps.metrics.notifications.inc({ sink: 'webhook', outcome: 'ok' });
        return;
      }
      if (out.kind === 'reject') {
        this.drop('rejected', 1, out.reason);
        return;
      }
      if (attempt >= this.cfg.maxAttempts) {
        this.drop('attempts_exhausted', 1, `${attempt} attempts, last: ${out.reason}`);
        return;
      }
      let delay = backoffDelay(attempt, this.cfg.initialBackoffMs, this.cfg.maxBackoffMs, this.random());
      if (out.retryAfterMs !== undefined) delay = Math.min(this.cfg.maxBackoffMs, Math.max(delay, out.retryAfterMs));
      this.deps.logger.debug({ webhook: this.name, attempt, delayMs: delay, reason: out.reason }, 'webhook delivery failed, will retry');
      try {
        await this.sleep(delay, this.stop.signal);
      } catch {
        return; // aborted by close()
      }
    }
  }

  private async attempt(item: Item): Promise<Outcome> {
    this.stats.attempts++;
    const signal = AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.cfg.timeoutMs)]);
    let outcome: Outcome;
    try {
      const res = await fetch(this.cfg.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'smartops-gateway',
          'x-smartops-event': item.event,
          // Same id on every retry of one transition, so a receiver can drop duplicates.
          'x-smartops-delivery': item.deliveryId,
          ...this.cfg.headers,
        },
        body: item.body,
        signal,
        redirect: 'manual',
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) outcome = { kind: 'ok' };
      else if (res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500) {
        const ra = parseRetryAfter(res.headers.get('retry-after'));
        outcome = ra === undefined ? { kind: 'retry', reason: `HTTP ${res.status}` } : { kind: 'retry', reason: `HTTP ${res.status}`, retryAfterMs: ra };
      } else outcome = { kind: 'reject', reason: `HTTP ${res.status} (not retried: fix the webhook URL or headers)` };
      this.deps.metrics.webhookAttempts.inc({ webhook: this.name, outcome: outcome.kind === 'ok' ? 'ok' : 'http_error' });
    } catch (e) {
      const timeout = (e as Error).name === 'TimeoutError';
      outcome = { kind: 'retry', reason: timeout ? `timeout after ${this.cfg.timeoutMs} ms` : `network error: ${(e as Error).message}` };
      this.deps.metrics.webhookAttempts.inc({ webhook: this.name, outcome: timeout ? 'timeout' : 'network_error' });
    }
    return outcome;
  }

  /** Stop now: abort the attempt in flight, count what was not delivered as dropped (shutdown). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pending = this.depth;
    this.stop.abort();
    this.queue.length = 0;
    if (this.running) await this.running;
    if (pending > 0) this.drop('shutdown', pending);
    this.gauge();
  }
}

export class Webhooks {
  readonly senders: WebhookSender[];

  constructor(configs: readonly WebhookConfig[], deps: WebhookDeps) {
    this.senders = configs.map((c, i) => new WebhookSender(c, c.name ?? `webhook${i}`, deps));
  }

  send(t: AlertTransition): void {
    for (const s of this.senders) s.enqueue(t);
  }

  async close(): Promise<void> {
    await Promise.all(this.senders.map((s) => s.close()));
  }
}
