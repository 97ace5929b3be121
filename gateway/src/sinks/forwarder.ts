/**
 * Forwarder: moves readings from the outbox to the sink, oldest first, one write in flight, so the
 * readings of a machine reach the sink in the order they were accepted.
 * - batches by size (batchSize) and by time (flushIntervalMs);
 * - retry (network error, timeout, 5xx, 429, 401/403/404): exponential back-off with jitter,
 *   at least Retry-After (capped at max(retryMaxMs, 5 min) so a bogus header cannot park the
 *   queue for days), forever: nothing is dropped here, the outbox budget bounds what waits;
 * - 413 too large: split the batch in halves (a single point still too large is quarantined);
 * - 400 refused: split until the offending reading is alone, then quarantine it, so one bad point
 *   never blocks the queue. InfluxDB 1.x stores the valid points of a 400 "partial write"; writing
 *   them again while isolating the bad one is harmless (series + timestamp identity).
 * Deletes from the outbox only what the sink confirmed. A crash between the sink's confirmation and
 * the delete replays that batch on the next start; the sink deduplicates it. `ack` returns before
 * the outbox's writer thread has run the delete (outbox.ts): the next read already skips the batch.
 * A posted delete that fails is retried by the outbox (its batch is not resent) and reported by the
 * next `ack`, which throws: the loop below logs it.
 */
import type { Logger } from 'pino';
import { RateLimitedLog } from '../obs/logger.js';
import type { CoreMetrics } from '../obs/metrics.js';
import type { Outbox, OutboxEntry } from '../outbox/outbox.js';
import type { Sink, WriteOutcome } from './sink.js';

export interface ForwarderOptions {
  batchSize: number;
  flushIntervalMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface ForwarderStatus {
  lastSuccessAt: number | null;
  lastError: string | null;
  consecutiveFailures: number;
  /** Milliseconds of the last successful write. */
  lastWriteMs: number | null;
}

/** Longest Retry-After honoured when it exceeds retryMaxMs. */
const RETRY_AFTER_CAP_MS = 300_000;

/** Delay before retry number `attempt` (0-based): equal jitter in [cap/2, cap], at least Retry-After. */
export function backoffDelay(attempt: number, opts: Pick<ForwarderOptions, 'retryInitialMs' | 'retryMaxMs'>, retryAfterMs?: number, random = Math.random()): number {
  const cap = Math.min(opts.retryMaxMs, opts.retryInitialMs * 2 ** Math.min(attempt, 30));
  const jittered = cap / 2 + random * (cap / 2);
  const ra = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, Math.max(opts.retryMaxMs, RETRY_AFTER_CAP_MS));
  return Math.max(ra, jittered);
}

export class Forwarder {
  private running = false;
  private stopped = false;
  private draining = false;
  private wake: (() => void) | undefined;
  private abortSleep: (() => void) | undefined;
  private inflight: AbortController | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly rlog: RateLimitedLog;
  readonly status: ForwarderStatus = { lastSuccessAt: null, lastError: null, consecutiveFailures: 0, lastWriteMs: null };
  private readonly onAppend = (): void => this.wake?.();

  constructor(
    private readonly outbox: Outbox,
    private readonly sink: Sink,
    private readonly opts: ForwarderOptions,
    private readonly metrics: CoreMetrics,
    private readonly logger: Logger,
  ) {
    this.rlog = new RateLimitedLog(logger, 10_000);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopped = false;
    this.outbox.on('append', this.onAppend);
    this.loopDone = this.loop();
  }

  /** Sleep up to ms, or until woken by new data / stop. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(0, ms));
      const self = this;
      function done(): void {
        clearTimeout(t);
        if (self.wake === wakeMe) self.wake = undefined;
        resolve();
      }
      const wakeMe = (): void => done();
      this.wake = wakeMe;
    });
  }

  /** Back-off sleep: new data does not shorten it, stop does. */
  private sleepNoWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(t);
        if (self.abortSleep === done) self.abortSleep = undefined;
        resolve();
      }
      this.abortSleep = done;
    });
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const stats = this.outbox.stats();
        if (stats.depth === 0) {
          await this.sleep(this.opts.flushIntervalMs);
          continue;
        }
        // Batch by time: a partial batch waits until its oldest reading is flushIntervalMs old
        // (an append wakes us to re-check whether the batch is full).
        if (stats.depth < this.opts.batchSize && stats.oldestArrival !== null && !this.draining) {
          const wait = stats.oldestArrival + this.opts.flushIntervalMs - Date.now();
          if (wait > 0) {
            await this.sleep(Math.min(wait, this.opts.flushIntervalMs));
            continue;
          }
        }
        // Everything older was confirmed (deleted) or quarantined, so the head is always next.
        const entries = this.outbox.read(0, this.opts.batchSize);
        if (entries.length === 0) {
          await this.sleep(this.opts.flushIntervalMs);
          continue;
        }
        await this.deliver(entries);
      } catch (e) {
        // Never let an unexpected error (e.g. the disk) end the loop: log, wait, try again.
        this.rlog.warn('forwarder', { error: (e as Error).message }, 'forwarder error; retrying');
        await this.sleepNoWake(this.opts.retryInitialMs);
      }
    }
  }

  /** Write entries until each is confirmed or quarantined, or the forwarder stops. */
  private async deliver(entries: OutboxEntry[]): Promise<void> {
    const name = this.sink.name;
    let attempt = 0;
    let queue: OutboxEntry[][] = [entries];
    while (queue.length > 0 && !this.stopped) {
      const part = queue[0] as OutboxEntry[];
      const first = part[0] as OutboxEntry;
      const last = part[part.length - 1] as OutboxEntry;
      const started = process.hrtime.bigint();
      const ac = new AbortController();
      this.inflight = ac;
      this.outbox.beginFlight(first.id, last.id);
      let out: WriteOutcome;
      try {
        out = await this.sink.write(
          part.map((e) => e.reading),
          ac.signal,
        );
      } catch (e) {
        // Sinks report failures as outcomes; a throw is treated as transient all the same.
        out = { ok: false, kind: 'retry', message: `sink error: ${(e as Error).message}` };
      } finally {
        this.inflight = undefined;
      }
      this.outbox.endFlight(out.ok);
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      if (out.ok) {
        this.metrics.sinkWriteLatency.observe({ sink: name }, secs);
        this.metrics.sinkBatchesWritten.inc({ sink: name });
        this.metrics.sinkReadingsWritten.inc({ sink: name }, part.length);
        this.outbox.ack(last.id);
        this.status.lastSuccessAt = Date.now();
        this.status.lastWriteMs = secs * 1000;
        if (this.status.consecutiveFailures > 0) this.logger.info({ sink: name, failuresBefore: this.status.consecutiveFailures }, 'sink writes recovered');
        this.status.consecutiveFailures = 0;
        this.status.lastError = null;
        queue.shift();
        attempt = 0;
        continue;
      }
      this.metrics.sinkWriteErrors.inc({ sink: name, kind: out.kind });
      this.status.lastError = out.message;
      if (out.kind === 'too_large' || out.kind === 'rejected') {
        if (part.length > 1) {
          const mid = Math.ceil(part.length / 2);
          queue.splice(0, 1, part.slice(0, mid), part.slice(mid));
          continue;
        }
        const moved = this.outbox.quarantine([first.id], out.message);
        if (moved > 0) this.metrics.sinkQuarantined.inc({ sink: name }, moved);
        this.rlog.warn(
          `quarantine:${out.kind}`,
          { sink: name, machine: first.reading.machine, ts: first.reading.ts, error: out.message },
          'sink refused a reading: moved to quarantine (GET /api/v1/quarantine)',
        );
        queue.shift();
        continue;
      }
      // Transient: retry the same part after a back-off.
      this.status.consecutiveFailures++;
      if (this.stopped) return;
      this.metrics.sinkWriteRetries.inc({ sink: name });
      const delay = backoffDelay(attempt, this.opts, out.retryAfterMs);
      attempt++;
      if (this.status.consecutiveFailures === 1 || this.status.consecutiveFailures % 20 === 0) {
        this.logger.warn(
          { sink: name, error: out.message, retryInMs: Math.round(delay), failures: this.status.consecutiveFailures, waiting: this.outbox.stats().depth },
          'sink write failed; will retry (readings stay in the outbox)',
        );
      }
      await this.sleepNoWake(delay);
      // drop-oldest may have deleted some of these meanwhile (already counted as dropped): skip them.
      const oldest = this.outbox.oldestId();
      queue = queue.map((p) => p.filter((e) => oldest !== null && e.id >= oldest)).filter((p) => p.length > 0);
    }
  }

  /**
   * Flush what is waiting until the outbox is empty, a write fails or `timeoutMs` passes, then stop
   * (aborting a write still in flight). What is not written stays in the outbox for the next start.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    this.draining = true;
    this.wake?.();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.outbox.stats().depth > 0 && this.status.consecutiveFailures === 0) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.stopped = true;
    this.draining = false;
    this.wake?.();
    this.abortSleep?.();
    this.inflight?.abort();
    this.outbox.off('append', this.onAppend);
    await this.loopDone;
    this.running = false;
  }
}
