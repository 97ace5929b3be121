/**
 * A Sink receives readings the outbox has made durable. It never retries by itself: it reports
 * what happened and the forwarder decides (retry, split, quarantine), so every sink behaves alike.
 */
import type { Reading } from '../contract/reading.js';

export type WriteOutcome =
  | { ok: true }
  /** Transient (network, timeout, 5xx, 429, auth not yet valid): retry the same batch later. */
  | { ok: false; kind: 'retry'; message: string; retryAfterMs?: number }
  /** 413: the batch is too large; split it. */
  | { ok: false; kind: 'too_large'; message: string }
  /** 400: the sink refuses the data itself; split until the bad point is isolated, then quarantine it. */
  | { ok: false; kind: 'rejected'; message: string };

export interface Sink {
  readonly name: string;
  /** Prepare (e.g. create the database). Must not throw for an unreachable server: the forwarder retries. */
  init(): Promise<void>;
  /**
   * Write readings. `signal` aborts a write in flight (graceful stop past its deadline); an aborted
   * write reports `retry` and the readings stay in the outbox.
   */
  write(readings: Reading[], signal?: AbortSignal): Promise<WriteOutcome>;
  /**
   * Derived points (anomaly scores, alert events, gateway health) as line protocol. Best effort:
   * they are recomputed or kept elsewhere (alerts in SQLite), so they do not go through the outbox.
   */
  writeLines(lines: string[]): Promise<WriteOutcome>;
  /** Whether the sink answers now (for /ready). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** With influx.gzip on, bodies at least this large are compressed (smaller ones gain nothing). */
export const GZIP_MIN_BYTES = 1000;

/** Retry-After: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3). Invalid values are ignored. */
export function parseRetryAfter(v: string | null | undefined, now = Date.now()): number | undefined {
  if (!v) return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  // HTTP-date forms all start with a day name; V8's Date.parse would also take "-5" or "1.5".
  if (!/^[A-Za-z]{3}/.test(t)) return undefined;
  const d = Date.parse(t);
  return Number.isFinite(d) ? Math.max(0, d - now) : undefined;
}

/**
 * Map an HTTP status of a write to an outcome: 2xx ok; 413 split; 400/422 the data itself is refused
 * (InfluxDB: unparsable line, field type conflict, points outside the retention policy); everything
 * else (401/403/404 before the database exists, 408, 429, 5xx) is transient and retried.
 */
export function outcomeForStatus(status: number, body: string, retryAfter?: string | null): WriteOutcome {
  if (status >= 200 && status < 300) return { ok: true };
  const message = `HTTP ${status}: ${body.slice(0, 300)}`;
  if (status === 413) return { ok: false, kind: 'too_large', message };
  if (status === 400 || status === 422) return { ok: false, kind: 'rejected', message };
  const out: WriteOutcome = { ok: false, kind: 'retry', message };
  const ra = parseRetryAfter(retryAfter);
  if (ra !== undefined) out.retryAfterMs = ra;
  return out;
}

/** InfluxDB 1.x and 2.x both answer `GET /ping` with 204 when up. */
export async function pingInflux(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    const res = await fetch(`${url.replace(/\/$/, '')}/ping`, { signal: AbortSignal.timeout(timeoutMs) });
    return res.status === 204 || res.ok;
  } catch {
    return false;
  }
}
