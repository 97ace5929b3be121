/**
 * InfluxDB 2.x write API (`POST /api/v2/write?org&bucket&precision=ms`, `Authorization: Token`)
 * through @influxdata/influxdb-client. The client's own batching and retries are switched off: the
 * outbox and forwarder own both, so a crash never loses what the client had buffered.
 */
import { HttpError, InfluxDB, setLogger, type WriteApi } from '@influxdata/influxdb-client';
import type { Reading } from '../contract/reading.js';
import { TelemetryLines, type ExtraTags } from './lineprotocol.js';
import { GZIP_MIN_BYTES, outcomeForStatus, pingInflux, type Sink, type WriteOutcome } from './sink.js';

// The client prints every failed write to the console; the forwarder already logs outcomes
// (rate-limited, with retry state), so the client's own logger stays quiet.
setLogger({ error: () => undefined, warn: () => undefined });

export interface InfluxV2Options {
  url: string;
  org: string;
  bucket: string;
  token: string;
  timeoutMs: number;
  /** Gzip bodies of GZIP_MIN_BYTES or more (config influx.gzip); otherwise never (the client's own default is on). */
  gzip?: boolean;
  tagsFor: (machine: string) => ExtraTags | undefined;
}

export class InfluxV2Sink implements Sink {
  readonly name = 'influxdb-v2';
  private readonly influx: InfluxDB;
  private readonly lines: TelemetryLines;

  constructor(private readonly opts: InfluxV2Options) {
    this.influx = new InfluxDB({ url: opts.url, token: opts.token, timeout: opts.timeoutMs });
    this.lines = new TelemetryLines(opts.tagsFor);
  }

  async init(): Promise<void> {}

  /** A write API for exactly one record (the whole body): it flushes once, on close, and never retries. */
  private api(): WriteApi {
    return this.influx.getWriteApi(this.opts.org, this.opts.bucket, 'ms', {
      batchSize: 2,
      flushInterval: 0,
      maxRetries: 0,
      maxBufferLines: 2,
      // The client gzips every body over 1,000 bytes unless told otherwise: ~1.6 us of CPU per
      // reading for bandwidth a local InfluxDB does not need (config influx.gzip). It compresses
      // bodies longer than the threshold, so GZIP_MIN_BYTES - 1 gives the 1.x sink's ">= GZIP_MIN_BYTES".
      gzipThreshold: this.opts.gzip ? GZIP_MIN_BYTES - 1 : Number.POSITIVE_INFINITY,
    });
  }

  write(readings: Reading[], signal?: AbortSignal): Promise<WriteOutcome> {
    // The body is encoded into one buffer, not a string per line (lineprotocol.ts,
    // TelemetryLines.encode), and handed to the client as one record: a record is line protocol,
    // and several lines joined by newlines are too. One string per batch instead of one per
    // reading plus their number strings and the client's join (bench/README "Sinks").
    return readings.length === 0 ? Promise.resolve({ ok: true }) : this.post(this.lines.encode(readings).toString('utf8'), signal);
  }

  writeLines(lines: string[], signal?: AbortSignal): Promise<WriteOutcome> {
    return lines.length === 0 ? Promise.resolve({ ok: true }) : this.post(lines.join('\n'), signal);
  }

  private async post(body: string, signal?: AbortSignal): Promise<WriteOutcome> {
    const api = this.api();
    try {
      api.writeRecord(body);
      const closed = api.close();
      if (signal) {
        // The client takes no AbortSignal: stop waiting for it (its own timeout ends the request).
        // The readings stay in the outbox and are written again later, which InfluxDB deduplicates.
        closed.catch(() => undefined);
        const aborted = await new Promise<boolean>((resolve, reject) => {
          if (signal.aborted) return resolve(true);
          const onAbort = (): void => resolve(true);
          signal.addEventListener('abort', onAbort, { once: true });
          closed.then(
            () => {
              signal.removeEventListener('abort', onAbort);
              resolve(false);
            },
            (e: unknown) => {
              signal.removeEventListener('abort', onAbort);
              reject(e as Error);
            },
          );
        });
        if (aborted) return { ok: false, kind: 'retry', message: 'write aborted (gateway stopping)' };
      } else await closed;
      return { ok: true };
    } catch (e) {
      if (e instanceof HttpError) {
        // The client parses only the delta-seconds form of Retry-After; the raw header covers dates too.
        const raw = e.headers?.['retry-after'];
        const header = Array.isArray(raw) ? raw[0] : raw;
        return outcomeForStatus(e.statusCode, e.body ?? e.message, header ?? null);
      }
      return { ok: false, kind: 'retry', message: `InfluxDB unreachable at ${this.opts.url}: ${(e as Error).message}` };
    }
  }

  ping(): Promise<boolean> {
    return pingInflux(this.opts.url);
  }

  async close(): Promise<void> {}
}
