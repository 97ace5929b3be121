/**
 * Readings read back from InfluxDB with InfluxQL (the `influx` package), so
 * GET /api/v1/machines/:id/readings answers the same way whichever sink holds the data.
 * InfluxDB 2.x/3.x answer InfluxQL on their v1-compatible /query endpoint (DBRP mapping) with
 * `Authorization: Token`, so one reader serves both.
 */
import { InfluxDB, escape } from 'influx';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { ReadingQuery, ReadingSource, StoredReading } from '../store/embedded.js';
import { metricOfFieldKey, telemetryFieldKey, TELEMETRY_TAG_KEYS } from './lineprotocol.js';

export interface InfluxQueryOptions {
  url: string;
  database: string;
  username?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  timeoutMs: number;
}

/** Columns of the telemetry measurement that are not fields: never reported as metrics. */
const TAG_COLUMNS = new Set(['time', ...TELEMETRY_TAG_KEYS]);

export class InfluxReadingSource implements ReadingSource {
  private readonly client: InfluxDB;
  /** The server as a person would name it (no credentials), for error messages. */
  private readonly where: string;

  constructor(opts: InfluxQueryOptions) {
    const u = new URL(opts.url);
    this.where = `${u.protocol}//${u.host}`;
    this.client = new InfluxDB({
      host: u.hostname,
      port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      protocol: u.protocol === 'https:' ? 'https' : 'http',
      path: u.pathname.replace(/\/$/, ''),
      database: opts.database,
      ...(opts.username ? { username: opts.username, password: opts.password ?? '' } : {}),
      options: {
        timeout: opts.timeoutMs,
        ...(opts.token ? { headers: { authorization: `Token ${opts.token}` } } : {}),
      },
    });
  }

  async queryReadings(q: ReadingQuery): Promise<StoredReading[]> {
    // A reserved metric name (`time`, a tag key) is stored under another field key (lineprotocol.ts).
    const fields = q.metrics && q.metrics.length > 0 ? q.metrics.map((m) => escape.quoted(telemetryFieldKey(m))).join(', ') : '*';
    const where = [`"machine" = ${escape.stringLit(q.machine)}`];
    if (q.from !== undefined) where.push(`time >= ${Math.trunc(q.from)}ms`);
    if (q.to !== undefined) where.push(`time <= ${Math.trunc(q.to)}ms`);
    const sql = `SELECT ${fields} FROM "telemetry" WHERE ${where.join(' AND ')} ORDER BY time ${q.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ${Math.trunc(q.limit)}`;
    let rows: Record<string, unknown>[];
    try {
      rows = (await this.client.query(sql, { precision: 'ms' })) as unknown as Record<string, unknown>[];
    } catch (e) {
      // After a failed request the `influx` client rests the host for a while and says only "No host
      // available"; name the server and say why instead.
      const m = (e as Error).message;
      const why = m === 'No host available' ? `InfluxDB at ${this.where} unreachable (the last request failed; retrying shortly)` : m;
      throw new GatewayError(ErrorCodes.SINK_QUERY, `InfluxDB query failed: ${why}`, 502);
    }
    const out: StoredReading[] = [];
    for (const row of rows) {
      const metrics: Record<string, number> = {};
      let any = false;
      for (const [k, v] of Object.entries(row)) {
        if (TAG_COLUMNS.has(k) || typeof v !== 'number') continue;
        metrics[metricOfFieldKey(k)] = v;
        any = true;
      }
      const t = row.time as Date | undefined;
      if (any && t) out.push({ ts: t.getTime(), metrics });
    }
    return out;
  }
}
