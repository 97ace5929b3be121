/**
 * Embedded reading store (SQLite WAL under the data dir), used as the sink when no InfluxDB is
 * configured, so a demo and the HTTP API work with no other service.
 *
 * Like InfluxDB, a point is identified by machine + timestamp: writing the same point again merges
 * its fields (json_patch), so a replay after a crash never creates duplicates.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Reading } from '../contract/reading.js';
import type { Sink, WriteOutcome } from '../sinks/sink.js';

export interface ReadingQuery {
  machine: string;
  from?: number | undefined;
  to?: number | undefined;
  metrics?: string[] | undefined;
  limit: number;
  order: 'asc' | 'desc';
}

export interface StoredReading {
  ts: number;
  metrics: Record<string, number>;
}

/** What the readings endpoint queries, whichever sink holds the data. */
export interface ReadingSource {
  queryReadings(q: ReadingQuery): Promise<StoredReading[]>;
}

function pickMetrics(all: Record<string, number>, wanted?: string[]): Record<string, number> | undefined {
  if (!wanted || wanted.length === 0) return all;
  const out: Record<string, number> = {};
  let any = false;
  for (const m of wanted) {
    const v = all[m];
    if (v !== undefined) {
      out[m] = v;
      any = true;
    }
  }
  return any ? out : undefined;
}

export class EmbeddedStore implements Sink, ReadingSource {
  readonly name = 'embedded';
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private retentionTimer: NodeJS.Timeout | undefined;

  constructor(
    dir: string,
    private readonly retentionMs: number,
  ) {
    this.db = new Database(join(dir, 'readings.sqlite'));
    this.db.pragma('journal_mode = WAL');
    // The outbox already holds every reading durably until this write is confirmed.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS readings (
        machine TEXT NOT NULL,
        ts INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (machine, ts)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS readings_ts ON readings (ts);
    `);
    this.upsert = this.db.prepare(
      'INSERT INTO readings (machine, ts, data) VALUES (?, ?, ?) ON CONFLICT (machine, ts) DO UPDATE SET data = json_patch(readings.data, excluded.data)',
    );
  }

  async init(): Promise<void> {
    this.applyRetention();
    this.retentionTimer = setInterval(() => this.applyRetention(), 60_000);
    this.retentionTimer.unref();
  }

  /** Deletes readings older than the retention; returns how many. */
  applyRetention(now = Date.now()): number {
    return this.db.prepare('DELETE FROM readings WHERE ts < ?').run(now - this.retentionMs).changes;
  }

  async write(readings: Reading[]): Promise<WriteOutcome> {
    try {
      this.db.transaction(() => {
        for (const r of readings) this.upsert.run(r.machine, r.ts, JSON.stringify(r.metrics));
      })();
      return { ok: true };
    } catch (e) {
      return { ok: false, kind: 'retry', message: `embedded store write failed: ${(e as Error).message}` };
    }
  }

  /** No InfluxDB, so derived points have nowhere to go; the HTTP API serves them from their own stores. */
  async writeLines(): Promise<WriteOutcome> {
    return { ok: true };
  }

  async ping(): Promise<boolean> {
    return this.db.open;
  }

  async queryReadings(q: ReadingQuery): Promise<StoredReading[]> {
    const from = q.from ?? 0;
    const to = q.to ?? Number.MAX_SAFE_INTEGER;
    const sql = `SELECT ts, data FROM readings WHERE machine = ? AND ts >= ? AND ts <= ? ORDER BY ts ${q.order === 'asc' ? 'ASC' : 'DESC'} LIMIT ?`;
    const stmt = this.db.prepare(sql);
    const out: StoredReading[] = [];
    // Filtering by metric happens after the SQL limit, so page through until `limit` matches.
    let offset = 0;
    const page = Math.max(q.limit, 100);
    for (;;) {
      const rows = stmt.all(q.machine, from, to, page + offset) as { ts: number; data: string }[];
      for (let i = offset; i < rows.length && out.length < q.limit; i++) {
        const row = rows[i] as { ts: number; data: string };
        const metrics = pickMetrics(JSON.parse(row.data) as Record<string, number>, q.metrics);
        if (metrics) out.push({ ts: row.ts, metrics });
      }
      if (out.length >= q.limit || rows.length < page + offset || !q.metrics?.length) break;
      offset = rows.length;
    }
    return out;
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM readings').get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.db.open) this.db.close();
  }
}
