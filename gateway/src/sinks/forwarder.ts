/**
 * Forwarder: moves readings from the outbox to the sink, in order, one batch in flight.
 * - batches by size (batchSize) and by time (flushIntervalMs);
 * - retry/429/5xx/unreachable: exponential back-off with full jitter, honouring Retry-After, forever
 *   (nothing is dropped; the outbox budget bounds what waits);
 * - 413 too large: split the batch in halves;
 * - 400 rejected: split until the offending reading is alone, then quarantine it so it never blocks
 *   the queue.
 * Deletes from the outbox only what the sink confirmed.
 */
import type { Logger } from 'pino';
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

export class Forwarder {
  private running = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  readonly status: ForwarderStatus = { lastSuccessAt: null, lastError: null, consecutiveFailures: 0, lastWriteMs: null };
  private readonly onAppend = (): void => this.wake?.();

  constructor(
    private readonly outbox: Outbox,
    private readonly sink: Sink,
    private readonly opts: ForwarderOptions,
    private readonly metrics: CoreMetrics,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.outbox.on('append', this.onAppend);
    this.loopDone = this.loop();
  }

  /** Sleep up to ms, or until woken by new data / stop. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async loop(): Promise<void> {
    let cursor = 0;
    while (!this.stopped) {
      const stats = this.outbox.stats();
      if (stats.depth === 0) {
        await this.sleep(this.opts.flushIntervalMs);
        continue;
      }
      // Batch by time: a partial batch waits until its oldest reading is flushIntervalMs old.
      if (stats.depth < this.opts.batchSize && stats.oldestArrival !== null) {
        const wait = stats.oldestArrival + this.opts.flushIntervalMs - Date.now();
        if (wait > 0 && !this.draining) {
          await this.sleepUntilFullOr(wait);
          continue;
        }
      }
      const entries = this.outbox.read(cursor, this.opts.batchSize);
      if (entries.length === 0) {
        cursor = 0;
        continue;
      }
      const ok = await this.deliver(entries);
      if (ok) cursor = (entries[entries.length - 1] as OutboxEntry).id;
      else cursor = 0;
    }
  }

  private draining = false;

  private async sleepUntilFullOr(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.stopped && !this.draining && Date.now() < deadline) {
      if (this.outbox.stats().depth >= this.opts.batchSize) return;
      await this.sleep(Math.min(deadline - Date.now(), 50));
    }
  }

  /** Write entries; on success ack them. Returns false when the caller should re-read (after stop). */
  private async deliver(entries: OutboxEntry[]): Promise<boolean> {
    let attempt = 0;
    const queue: OutboxEntry[][] = [entries];
    while (queue.length > 0) {
      if (this.stopped && !this.draining) return false;
      const part = queue[0] as OutboxEntry[];
      const started = process.hrtime.bigint();
      const out: WriteOutcome = await this.sink.write(part.map((e) => e.reading));
      const secs = Number(process.hrtime.bigint() - started) / 1e9;
      if (out.ok) {
        this.metrics.sinkWriteLatency.observe({ sink: this.sink.name }, secs);
        this.metrics.sinkBatchesWritten.inc({ sink: this.sink.name });
        this.metrics.sinkReadingsWritten.inc({ sink: this.sink.name }, part.length);
        this.outbox.ack((part[part.length - 1] as OutboxEntry).id);
        this.status.lastSuccessAt = Date.now();
        this.status.lastWriteMs = secs * 1000;
        if (this.status.consecutiveFailures > 0) this.logger.info({ sink: this.sink.name, after: this.status.consecutiveFailures }, 'sink writes recovered');
        this.status.consecutiveFailures = 0;
        this.status.lastError = null;
        queue.shift();
        attempt = 0;
        continue;
      }
      this.metrics.sinkWriteErrors.inc({ sink: this.sink.name, kind: out.kind });
      this.status.lastError = out.message;
      if ((out.kind === 'too_large' || out.kind === 'rejected') && part.length > 1) {
        const mid = Math.ceil(part.length / 2);
        queue.splice(0, 1, part.slice(0, mid), part.slice(mid));
        continue;
      }
      if (out.kind === 'rejected' || out.kind === 'too_large') {
        const e = part[0] as OutboxEntry;
        this.outbox.quarantine([e.id], out.message);
        this.metrics.sinkQuarantined.inc({ sink: this.sink.name });
        this.logger.error({ sink: this.sink.name, machine: e.reading.machine, ts: e.reading.ts, error: out.message }, 'sink refused a reading: moved to quarantine (GET /api/v1/quarantine)');
        queue.shift();
        continue;
      }
      // Retry the same part: exponential back-off with full jitter, at least Retry-After.
      this.status.consecutiveFailures++;
      this.metrics.sinkWriteRetries.inc({ sink: this.sink.name });
      const cap = Math.min(this.opts.retryMaxMs, this.opts.retryInitialMs * 2 ** Math.min(attempt, 20));
      const delay = Math.max(out.retryAfterMs ?? 0, this.opts.retryInitialMs / 2 + Math.random() * (cap - this.opts.retryInitialMs / 2));
      attempt++;
      if (this.status.consecutiveFailures === 1 || this.status.consecutiveFailures % 20 === 0) {
        this.logger.warn({ sink: this.sink.name, error: out.message, retryInMs: Math.round(delay), failures: this.status.consecutiveFailures }, 'sink write failed; will retry (readings stay in the outbox)');
      }
      if (this.stopped) return false;
      await this.sleepNoWake(delay);
    }
    return true;
  }

  private sleepNoWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.abortSleep = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private abortSleep: (() => void) | undefined;

  /**
   * Flush what is waiting until the outbox is empty or `timeoutMs` passes, then stop.
   * What is not written stays in the outbox for the next start.
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
    this.outbox.off('append', this.onAppend);
    // A write in flight finishes (or times out via the sink's own timeout) before we return.
    await this.loopDone;
    this.running = false;
  }
}
