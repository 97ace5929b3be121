/**
 * Embedded reading store (SQLite WAL under the data dir), used as the sink when no InfluxDB is
 * configured, so a demo and the HTTP API work with no other service.
 *
 * Like InfluxDB, a point is identified by machine + timestamp: writing the same point again merges
 * its fields (json_patch), so a replay after a crash never creates duplicates.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
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

export interface EmbeddedStoreOptions {
  /** Readings older than this are deleted. */
  retentionMs: number;
  /** Disk budget of the readings (SQLite pages in use); past it the oldest are deleted first. */
  maxBytes: number;
  /** Counts what expiry deleted, by reason, in /metrics. */
  registry?: Registry | undefined;
}

/**
 * The budget check deletes the oldest readings in passes of one statement each: the first of
 * BUDGET_FIRST_CHUNK readings, later ones sized from the bytes the previous pass freed per reading,
 * so it stops not far under the budget (pages free up in steps); at most BUDGET_MAX_CHUNK readings per pass and
 * BUDGET_MAX_PASSES passes per check, so a budget far exceeded (a lowered maxBytes) is worked off over
 * several checks instead of in one long block of the event loop.
 */
const BUDGET_FIRST_CHUNK = 1_000;
const BUDGET_MAX_CHUNK = 50_000;
const BUDGET_MAX_PASSES = 40;

export class EmbeddedStore implements Sink, ReadingSource {
  readonly name = 'embedded';
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement;
  private retentionTimer: NodeJS.Timeout | undefined;
  private readonly retentionMs: number;
  private readonly maxBytes: number;
  /** Readings deleted by expiry since start, by reason. */
  readonly expired = { age: 0, budget: 0 };

  constructor(dir: string, opts: EmbeddedStoreOptions) {
    this.retentionMs = opts.retentionMs;
    this.maxBytes = opts.maxBytes;
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
    if (opts.registry) {
      const self = this;
      let reported = { age: 0, budget: 0 };
      new Counter({
        name: 'smartops_store_readings_expired_total',
        help: 'Readings the embedded store deleted: age = older than store.retentionDays, budget = oldest first while the readings use more than store.maxBytes',
        labelNames: ['reason'],
        registers: [opts.registry],
        collect() {
          for (const reason of ['age', 'budget'] as const) this.inc({ reason }, self.expired[reason] - reported[reason]);
          reported = { ...self.expired };
        },
      });
    }
    this.upsert = this.db.prepare(
      'INSERT INTO readings (machine, ts, data) VALUES (?, ?, ?) ON CONFLICT (machine, ts) DO UPDATE SET data = json_patch(readings.data, excluded.data)',
    );
  }

  async init(): Promise<void> {
    this.applyRetention();
    this.retentionTimer = setInterval(() => this.applyRetention(), 60_000);
    this.retentionTimer.unref();
  }

  /** Deletes readings older than the retention, then the oldest while over the disk budget; returns how many. */
  applyRetention(now = Date.now()): number {
    const byAge = this.db.prepare('DELETE FROM readings WHERE ts < ?').run(now - this.retentionMs).changes;
    this.expired.age += byAge;
    let byBudget = 0;
    const oldest = this.db.prepare('DELETE FROM readings WHERE (machine, ts) IN (SELECT machine, ts FROM readings ORDER BY ts LIMIT ?)');
    // Freed pages go to SQLite's free list and are reused by the next writes, so the file stays near the budget.
    let used = this.usedBytes();
    let chunk = BUDGET_FIRST_CHUNK;
    for (let pass = 0; pass < BUDGET_MAX_PASSES && used > this.maxBytes; pass++) {
      const n = oldest.run(chunk).changes;
      byBudget += n;
      if (n === 0) break;
      const after = this.usedBytes();
      const perReading = (used - after) / n;
      used = after;
      // Pages free up in steps: a pass that freed none yet doubles the next one.
      chunk = perReading > 0 ? Math.ceil((used - this.maxBytes) / perReading) : chunk * 2;
      chunk = Math.min(BUDGET_MAX_CHUNK, Math.max(100, chunk));
    }
    this.expired.budget += byBudget;
    return byAge + byBudget;
  }

  /** Bytes of the database's pages in use (the file less its free list). */
  usedBytes(): number {
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * (this.db.pragma('page_size', { simple: true }) as number);
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
