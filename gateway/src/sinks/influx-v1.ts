/**
 * InfluxDB 1.x write API (`POST /write`, line protocol, precision=ms). The same endpoint is served
 * by InfluxDB 2.x/3.x for v1 compatibility, so this sink also covers them (database = DBRP name).
 * Raw HTTP rather than the `influx` package for writes: we need the status code and Retry-After of
 * every response to decide between retry, split and quarantine (influx-query.ts reads back).
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Reading } from '../contract/reading.js';
import { HttpPoster } from './http-post.js';
import { TelemetryLines, type ExtraTags } from './lineprotocol.js';
import { GZIP_MIN_BYTES, outcomeForStatus, pingInflux, type Sink, type WriteOutcome } from './sink.js';

// zlib's callback form runs on libuv's thread pool, not on the event loop.
const gzipAsync = promisify(gzip);

export interface InfluxV1Options {
  url: string;
  database: string;
  retentionPolicy?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  createDatabase: boolean;
  timeoutMs: number;
  /** Gzip bodies of GZIP_MIN_BYTES or more (config influx.gzip; /write takes Content-Encoding: gzip). */
  gzip?: boolean;
  tagsFor: (machine: string) => ExtraTags | undefined;
}

export class InfluxV1Sink implements Sink {
  readonly name = 'influxdb-v1';
  private dbReady = false;
  private readonly lines: TelemetryLines;
  private readonly poster = new HttpPoster();
  /** `/write` with the database, precision and retention policy: the same for every write. */
  private readonly writeUrl: URL;

  constructor(private readonly opts: InfluxV1Options) {
    this.lines = new TelemetryLines(opts.tagsFor);
    const params = new URLSearchParams({ db: opts.database, precision: 'ms' });
    if (opts.retentionPolicy) params.set('rp', opts.retentionPolicy);
    this.writeUrl = new URL(`${opts.url.replace(/\/$/, '')}/write?${params.toString()}`);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
    if (this.opts.username) {
      h.authorization = `Basic ${Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64')}`;
    }
    return h;
  }

  /**
   * Starts creating the database in the background: an InfluxDB that is down or hangs must not
   * delay the gateway's start (readings are accepted into the outbox meanwhile). Each write
   * creates it first until that has succeeded.
   */
  async init(): Promise<void> {
    this.ensureDatabase().catch(() => undefined);
  }

  private signal(signal?: AbortSignal): AbortSignal {
    const t = AbortSignal.timeout(this.opts.timeoutMs);
    return signal ? AbortSignal.any([signal, t]) : t;
  }

  private async ensureDatabase(signal?: AbortSignal): Promise<void> {
    if (this.dbReady || !this.opts.createDatabase) return;
    const res = await fetch(`${this.opts.url.replace(/\/$/, '')}/query`, {
      method: 'POST',
      headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ q: `CREATE DATABASE "${this.opts.database.replace(/["\\]/g, (c) => `\\${c}`)}"` }),
      signal: this.signal(signal),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.ok) this.dbReady = true;
  }

  write(readings: Reading[], signal?: AbortSignal): Promise<WriteOutcome> {
    // Encoded into one buffer, not a string per line (lineprotocol.ts, TelemetryLines.encode).
    return readings.length === 0 ? Promise.resolve({ ok: true }) : this.post(this.lines.encode(readings), signal);
  }

  writeLines(lines: string[], signal?: AbortSignal): Promise<WriteOutcome> {
    return lines.length === 0 ? Promise.resolve({ ok: true }) : this.post(lines.join('\n'), signal);
  }

  private async post(body: string | Buffer, signal?: AbortSignal): Promise<WriteOutcome> {
    try {
      // A user without admin rights cannot create it; the write below still works if it exists.
      if (!this.dbReady) await this.ensureDatabase(signal).catch((e: unknown) => {
        if (signal?.aborted) throw e;
      });
      const headers = this.headers();
      let payload = body;
      if (this.opts.gzip && Buffer.byteLength(body) >= GZIP_MIN_BYTES) {
        payload = await gzipAsync(body);
        headers['content-encoding'] = 'gzip';
      }
      const res = await this.poster.post(this.writeUrl, headers, payload, this.signal(signal));
      if (res.status >= 200 && res.status < 300) this.dbReady = true;
      // 404 "database not found" after the database was dropped: create it and retry.
      if (res.status === 404) this.dbReady = false;
      return outcomeForStatus(res.status, res.text, res.retryAfter);
    } catch (e) {
      return { ok: false, kind: 'retry', message: `InfluxDB unreachable at ${this.opts.url}: ${(e as Error).message}` };
    }
  }

  ping(): Promise<boolean> {
    return pingInflux(this.opts.url);
  }

  async close(): Promise<void> {
    this.poster.close();
  }
}
