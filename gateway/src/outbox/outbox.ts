/**
 * Durable outbox: every accepted reading is committed here (SQLite WAL) before its publisher gets
 * a PUBACK; the sink writer reads in id order and deletes only what the sink confirmed.
 *
 * - Group commit: appends arriving within `commitIntervalMs` share one transaction (and one fsync
 *   with fsync=always), so durability costs one disk flush per group, not per message.
 * - Disk budget: logical bytes of waiting readings are counted; when full, `reject` holds appends
 *   (back-pressure) and `drop-oldest` deletes the oldest waiting rows, counted.
 * - Order: ids are monotonic, so readings of one machine leave in the order they arrived.
 */
import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Reading } from '../contract/reading.js';
import { ErrorCodes, GatewayError } from '../errors.js';

export interface OutboxOptions {
  dir: string;
  fsync: 'always' | 'os';
  commitIntervalMs: number;
  maxBytes: number;
  fullPolicy: 'reject' | 'drop-oldest';
  fullWaitMs: number;
  /** Called with how many readings drop-oldest deleted. */
  onDrop?: (count: number) => void;
  /** Called with the duration (s) of each group commit. */
  onCommit?: (seconds: number, readings: number) => void;
}

export interface OutboxEntry {
  id: number;
  reading: Reading;
}

export interface QuarantinedEntry {
  id: number;
  machine: string;
  ts: number;
  metrics: Record<string, number>;
  error: string;
  at: number;
}

export interface OutboxStats {
  depth: number;
  bytes: number;
  maxBytes: number;
  oldestArrival: number | null;
  quarantined: number;
}

interface PendingAppend {
  rows: { machine: string; ts: number; data: string; bytes: number }[];
  bytes: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** When a `reject`-policy append started waiting for space. */
  waitingSince?: number;
}

/** Fixed per-row overhead (rowid, ts, arrival, index entry) added to the payload length. */
const ROW_OVERHEAD = 48;

export class Outbox extends EventEmitter {
  private readonly db: Database.Database;
  private readonly opts: OutboxOptions;
  private pending: PendingAppend[] = [];
  private waiting: PendingAppend[] = [];
  private timer: NodeJS.Timeout | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private depth = 0;
  private bytes = 0;
  private readonly stmts: {
    insert: Database.Statement;
    read: Database.Statement;
    deleteUpTo: Database.Statement;
    deleteIds: Database.Statement;
    oldest: Database.Statement;
    oldestRows: Database.Statement;
    quarantine: Database.Statement;
    listQuarantine: Database.Statement;
    countQuarantine: Database.Statement;
    sumUpTo: Database.Statement;
    bytesOf: Database.Statement;
  };

  constructor(opts: OutboxOptions) {
    super();
    this.opts = opts;
    this.db = new Database(join(opts.dir, 'outbox.sqlite'));
    this.db.pragma('journal_mode = WAL');
    // FULL in WAL mode fsyncs the WAL on every commit; NORMAL leaves it to the OS (crash-safe, not power-safe).
    this.db.pragma(`synchronous = ${opts.fsync === 'always' ? 'FULL' : 'NORMAL'}`);
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        machine TEXT NOT NULL,
        ts INTEGER NOT NULL,
        data TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        arrived INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        ts INTEGER NOT NULL,
        data TEXT NOT NULL,
        error TEXT NOT NULL,
        at INTEGER NOT NULL
      );
    `);
    this.stmts = {
      insert: this.db.prepare('INSERT INTO outbox (machine, ts, data, bytes, arrived) VALUES (?, ?, ?, ?, ?)'),
      read: this.db.prepare('SELECT id, machine, ts, data FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
      deleteUpTo: this.db.prepare('DELETE FROM outbox WHERE id <= ?'),
      deleteIds: this.db.prepare('DELETE FROM outbox WHERE id = ?'),
      oldest: this.db.prepare('SELECT arrived FROM outbox ORDER BY id LIMIT 1'),
      oldestRows: this.db.prepare('SELECT id, bytes FROM outbox ORDER BY id LIMIT ?'),
      quarantine: this.db.prepare('INSERT OR REPLACE INTO quarantine (id, machine, ts, data, error, at) SELECT id, machine, ts, data, ?, ? FROM outbox WHERE id = ?'),
      listQuarantine: this.db.prepare('SELECT id, machine, ts, data, error, at FROM quarantine ORDER BY id DESC LIMIT ?'),
      countQuarantine: this.db.prepare('SELECT COUNT(*) AS n FROM quarantine'),
      sumUpTo: this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox WHERE id <= ?'),
      bytesOf: this.db.prepare('SELECT bytes FROM outbox WHERE id = ?'),
    };
    const row = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.depth = row.n;
    this.bytes = row.b;
  }

  /** Resolves once the readings are committed (and fsynced with fsync=always). */
  append(readings: Reading[]): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503));
    const rows = readings.map((r) => {
      const data = JSON.stringify(r.seq === undefined ? { m: r.metrics } : { m: r.metrics, s: r.seq });
      return { machine: r.machine, ts: r.ts, data, bytes: data.length + r.machine.length + ROW_OVERHEAD };
    });
    const bytes = rows.reduce((a, r) => a + r.bytes, 0);
    return new Promise<void>((resolve, reject) => {
      const p: PendingAppend = { rows, bytes, resolve, reject };
      if (this.waiting.length > 0) {
        // Keep arrival order: nobody overtakes a publisher already held for space.
        p.waitingSince = Date.now();
        this.waiting.push(p);
        this.armWaitTimer();
        return;
      }
      this.pending.push(p);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.commit();
    }, this.opts.commitIntervalMs);
  }

  private commit(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const accepted: PendingAppend[] = [];
    let newBytes = this.bytes;
    for (const p of batch) {
      if (newBytes + p.bytes > this.opts.maxBytes) {
        if (p.bytes > this.opts.maxBytes) {
          p.reject(new GatewayError(ErrorCodes.OUTBOX_FULL, `message of ${p.bytes} bytes is larger than the whole outbox budget (${this.opts.maxBytes})`, 503));
          continue;
        }
        if (this.opts.fullPolicy === 'reject') {
          p.waitingSince = Date.now();
          this.waiting.push(p);
          continue;
        }
      }
      newBytes += p.bytes;
      accepted.push(p);
    }
    // drop-oldest: free what the group needs beyond the budget (only ever from rows already stored).
    const toDropBytes = Math.max(0, newBytes - this.opts.maxBytes);
    if (this.waiting.length > 0) this.armWaitTimer();
    if (accepted.length === 0) return;
    const started = process.hrtime.bigint();
    const now = Date.now();
    let count = 0;
    let dropped = 0;
    try {
      this.db.transaction(() => {
        if (toDropBytes > 0) dropped = this.dropOldest(toDropBytes);
        for (const p of accepted) {
          for (const r of p.rows) {
            this.stmts.insert.run(r.machine, r.ts, r.data, r.bytes, now);
            count++;
          }
        }
      })();
    } catch (e) {
      for (const p of accepted) p.reject(e as Error);
      return;
    }
    for (const p of accepted) {
      this.depth += p.rows.length;
      this.bytes += p.bytes;
    }
    if (dropped > 0) this.opts.onDrop?.(dropped);
    this.opts.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9, count);
    for (const p of accepted) p.resolve();
    this.emit('append');
  }

  /** Delete oldest rows until at least `needBytes` are freed; returns rows deleted. Runs inside a transaction. */
  private dropOldest(needBytes: number): number {
    let freed = 0;
    let n = 0;
    while (freed < needBytes) {
      const rows = this.stmts.oldestRows.all(500) as { id: number; bytes: number }[];
      if (rows.length === 0) break;
      let upTo = 0;
      for (const r of rows) {
        freed += r.bytes;
        n++;
        upTo = r.id;
        if (freed >= needBytes) break;
      }
      this.stmts.deleteUpTo.run(upTo);
    }
    this.depth -= n;
    this.bytes -= freed;
    this.emit('dropped', n);
    return n;
  }

  private armWaitTimer(): void {
    if (this.waitTimer) return;
    this.waitTimer = setTimeout(() => {
      this.waitTimer = undefined;
      this.retryWaiting();
    }, Math.min(250, Math.max(10, this.opts.fullWaitMs)));
  }

  /** Move held appends back into the commit queue as space allows; fail those held too long. */
  private retryWaiting(): void {
    const now = Date.now();
    let room = this.opts.maxBytes - this.bytes - this.pending.reduce((a, p) => a + p.bytes, 0);
    while (this.waiting.length > 0) {
      const p = this.waiting[0] as PendingAppend;
      if (p.bytes <= room) {
        this.waiting.shift();
        room -= p.bytes;
        this.pending.push(p);
        continue;
      }
      break;
    }
    // Anything still held past fullWaitMs is refused so its publisher is disconnected (and retries).
    const keep: PendingAppend[] = [];
    for (const p of this.waiting) {
      if (now - (p.waitingSince ?? now) >= this.opts.fullWaitMs) {
        p.reject(new GatewayError(ErrorCodes.OUTBOX_FULL, `outbox disk budget (${this.opts.maxBytes} bytes) is full: the sink is not keeping up or is unreachable`, 503));
      } else keep.push(p);
    }
    this.waiting = keep;
    if (this.pending.length > 0) this.schedule();
    if (this.waiting.length > 0) this.armWaitTimer();
  }

  /** Up to `limit` entries after `afterId`, oldest first. */
  read(afterId: number, limit: number): OutboxEntry[] {
    const rows = this.stmts.read.all(afterId, limit) as { id: number; machine: string; ts: number; data: string }[];
    return rows.map((r) => {
      const d = JSON.parse(r.data) as { m: Record<string, number>; s?: number };
      const reading: Reading = { machine: r.machine, ts: r.ts, metrics: d.m };
      if (d.s !== undefined) reading.seq = d.s;
      return { id: r.id, reading };
    });
  }

  /** The sink confirmed everything up to and including `id`: delete it. */
  ack(upToId: number): void {
    const s = this.stmts.sumUpTo.get(upToId) as { n: number; b: number };
    if (s.n === 0) return;
    this.stmts.deleteUpTo.run(upToId);
    this.depth -= s.n;
    this.bytes -= s.b;
    if (this.waiting.length > 0) this.retryWaiting();
  }

  /** Move refused entries to quarantine (kept, counted, listed over HTTP) so they never block the queue. */
  quarantine(ids: number[], error: string): void {
    const now = Date.now();
    this.db.transaction(() => {
      for (const id of ids) {
        const row = this.stmts.bytesOf.get(id) as { bytes: number } | undefined;
        if (!row) continue;
        this.stmts.quarantine.run(error.slice(0, 1000), now, id);
        this.stmts.deleteIds.run(id);
        this.depth -= 1;
        this.bytes -= row.bytes;
      }
    })();
  }

  listQuarantine(limit: number): QuarantinedEntry[] {
    const rows = this.stmts.listQuarantine.all(limit) as { id: number; machine: string; ts: number; data: string; error: string; at: number }[];
    return rows.map((r) => ({ id: r.id, machine: r.machine, ts: r.ts, metrics: (JSON.parse(r.data) as { m: Record<string, number> }).m, error: r.error, at: r.at }));
  }

  stats(): OutboxStats {
    const o = this.stmts.oldest.get() as { arrived: number } | undefined;
    const q = this.stmts.countQuarantine.get() as { n: number };
    return { depth: this.depth, bytes: this.bytes, maxBytes: this.opts.maxBytes, oldestArrival: o ? o.arrived : null, quarantined: q.n };
  }

  /** Commit what is pending, refuse what is held, then close the database. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.timer = undefined;
    this.commit();
    for (const p of this.waiting) p.reject(new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503));
    this.waiting = [];
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // best effort: the WAL is replayed on next open anyway
    }
    this.db.close();
  }
}
