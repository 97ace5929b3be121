/**
 * Derived points (anomaly scores, alert events, gateway health) go to the sink through a small
 * bounded buffer flushed every second. They are not readings: they can be recomputed or are kept
 * elsewhere (alerts in SQLite), so they skip the outbox; when the sink is down they are retried
 * while the buffer has room, and what overflows is dropped and counted.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Sink } from './sink.js';

export class AuxWriter {
  private buf: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failures = 0;

  constructor(
    private readonly sink: Pick<Sink, 'writeLines'>,
    private readonly maxLines: number,
    private readonly dropped: Counter<'reason'>,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  push(lines: string[]): void {
    this.buf.push(...lines);
    const over = this.buf.length - this.maxLines;
    if (over > 0) {
      this.buf.splice(0, over);
      this.dropped.inc({ reason: 'aux_buffer_full' }, over);
    }
  }

  flush(): Promise<void> {
    if (this.writing || this.buf.length === 0) return this.writing ?? Promise.resolve();
    const lines = this.buf.splice(0, 5000);
    this.writing = this.sink
      .writeLines(lines)
      .then((out) => {
        if (out.ok) {
          this.failures = 0;
          return;
        }
        if (out.kind === 'retry') this.buf.unshift(...lines);
        else this.dropped.inc({ reason: `aux_${out.kind}` }, lines.length);
        this.failures++;
        if (this.failures === 1 || this.failures % 60 === 0) this.logger.warn({ error: out.message, failures: this.failures, buffered: this.buf.length }, 'derived points (anomaly/alerts/health) not written yet');
        const over = this.buf.length - this.maxLines;
        if (over > 0) {
          this.buf.splice(0, over);
          this.dropped.inc({ reason: 'aux_buffer_full' }, over);
        }
      })
      .finally(() => {
        this.writing = undefined;
      });
    return this.writing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    await this.flush();
  }
}
