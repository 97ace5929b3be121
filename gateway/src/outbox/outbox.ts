/**
 * Durable outbox: every accepted reading is committed here (SQLite WAL) before its publisher gets
 * a PUBACK; the forwarder reads in id order and deletes only what the sink confirmed.
 *
 * - Group commit: appends arriving within `commitIntervalMs` share one transaction, so durability
 *   costs one disk flush per group, not per message. The transaction runs synchronously on the
 *   event loop; nothing else can interleave with it, so no locking is needed.
 * - fsync policy (SQLite `synchronous`, https://sqlite.org/pragma.html#pragma_synchronous):
 *   `always` = FULL: in WAL mode the WAL is fsynced at every commit, so an acknowledged reading
 *   survives a power cut. `os` = NORMAL: the WAL is fsynced only at checkpoints; an acknowledged
 *   reading survives a crash of the gateway process (the data is in the OS page cache) but the last
 *   commits before a power cut or kernel crash can be lost. Either way the database stays consistent.
 * - Disk budget: the bytes of waiting readings (JSON payload + machine id + a fixed per-row overhead)
 *   are counted exactly in memory, adjusted in the same tick as every insert/delete. When an append
 *   does not fit, `reject` holds it (back-pressure: no PUBACK) and refuses it after `fullWaitMs`;
 *   `drop-oldest` deletes the oldest waiting rows in the same transaction as the insert, counted.
 *   The SQLite file itself is larger than the logical bytes (pages, indexes, free pages reused
 *   after deletes) and the WAL is truncated to JOURNAL_SIZE_LIMIT after checkpoints.
 * - Order: ids are AUTOINCREMENT (never reused) and commits are serialized, so readings leave in
 *   the order they were accepted; a held append keeps every later append behind it.
 * - Drops are reported through `onDrop` exactly: rows deleted by drop-oldest while the forwarder
 *   has them in a write in flight are counted only if that write fails (otherwise they arrived).
 */
import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Reading } from '../contract/reading.js';
import { ErrorCodes, GatewayError } from '../errors.js';

export type DropReason = 'outbox_full_drop_oldest' | 'quarantine_overflow';

export interface OutboxOptions {
  dir: string;
  fsync: 'always' | 'os';
  commitIntervalMs: number;
  maxBytes: number;
  fullPolicy: 'reject' | 'drop-oldest';
  fullWaitMs: number;
  /** Most quarantined readings kept; older ones are deleted and reported as dropped (default 10000). */
  quarantineKeep?: number;
  /** Called with how many readings were deleted without reaching the sink, and why. */
  onDrop?: (count: number, reason: DropReason) => void;
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
  /** Appends (MQTT messages) held for space under the reject policy. */
  held: number;
}

interface PendingAppend {
  rows: { machine: string; ts: number; data: string; bytes: number }[];
  bytes: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** When a `reject`-policy append started waiting for space. */
  waitingSince?: number;
}

/** Fixed per-row overhead (rowid, ts, arrival, bytes column, record header) added to the payload length. */
const ROW_OVERHEAD = 48;
/** After a checkpoint the WAL file is truncated to this size, so it cannot stay large after a burst. */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE';
}

export class Outbox extends EventEmitter {
  private readonly db: Database.Database;
  private readonly opts: OutboxOptions;
  private readonly quarantineKeep: number;
  private pending: PendingAppend[] = [];
  /** Rows in `pending` (the next group commit), kept in step with it for ingest back-pressure. */
  private pendingRows = 0;
  private waiting: PendingAppend[] = [];
  private timer: NodeJS.Timeout | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private depth = 0;
  private bytes = 0;
  private quarantined = 0;
  /** Ids the forwarder is writing right now, and how many of them drop-oldest deleted meanwhile. */
  private flight: { lo: number; hi: number; dropped: number } | null = null;
  private readonly stmts: {
    insert: Database.Statement;
    read: Database.Statement;
    deleteUpTo: Database.Statement;
    deleteId: Database.Statement;
    oldest: Database.Statement;
    oldestRows: Database.Statement;
    quarantine: Database.Statement;
    listQuarantine: Database.Statement;
    countQuarantine: Database.Statement;
    trimQuarantine: Database.Statement;
    sumUpTo: Database.Statement;
    bytesOf: Database.Statement;
  };

  constructor(opts: OutboxOptions) {
    super();
    this.opts = opts;
    this.quarantineKeep = opts.quarantineKeep ?? 10000;
    this.db = new Database(join(opts.dir, 'outbox.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.fsync === 'always' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
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
      deleteId: this.db.prepare('DELETE FROM outbox WHERE id = ?'),
      oldest: this.db.prepare('SELECT id, arrived FROM outbox ORDER BY id LIMIT 1'),
      oldestRows: this.db.prepare('SELECT id, bytes FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
      quarantine: this.db.prepare('INSERT OR REPLACE INTO quarantine (id, machine, ts, data, error, at) SELECT id, machine, ts, data, ?, ? FROM outbox WHERE id = ?'),
      listQuarantine: this.db.prepare('SELECT id, machine, ts, data, error, at FROM quarantine ORDER BY id DESC LIMIT ?'),
      countQuarantine: this.db.prepare('SELECT COUNT(*) AS n FROM quarantine'),
      trimQuarantine: this.db.prepare('DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine ORDER BY id LIMIT ?)'),
      sumUpTo: this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox WHERE id <= ?'),
      bytesOf: this.db.prepare('SELECT bytes FROM outbox WHERE id = ?'),
    };
    const row = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.depth = row.n;
    this.bytes = row.b;
    this.quarantined = (this.stmts.countQuarantine.get() as { n: number }).n;
  }

  /**
   * Resolves once the readings are committed (and fsynced with fsync=always). Rejects with
   * SMARTOPS_OUTBOX_FULL when they cannot be stored (budget full past fullWaitMs, message larger
   * than the budget, disk full) and SMARTOPS_OUTBOX_CLOSED while stopping.
   */
  append(readings: Reading[]): Promise<void> {
    if (this.closed) return Promise.reject(new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503));
    const rows = readings.map((r) => {
      const data = JSON.stringify(r.seq === undefined ? { m: r.metrics } : { m: r.metrics, s: r.seq });
      // Machine ids and metric names are ASCII by contract and numbers serialize as ASCII: length = bytes.
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
      this.pendingRows += rows.length;
      this.schedule();
    });
  }

  /** Readings the next group commit will store (not those held for space under the reject policy). */
  pendingReadings(): number {
    return this.pendingRows;
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.commit();
    }, this.opts.commitIntervalMs);
  }

  /** One group commit; 'settled' tells ingest back-pressure that the pending queue was taken. */
  private commit(): void {
    try {
      this.commitGroup();
    } finally {
      this.emit('settled');
    }
  }

  private commitGroup(): void {
    const batch = this.pending;
    this.pending = [];
    this.pendingRows = 0;
    if (batch.length === 0) return;
    const max = this.opts.maxBytes;
    const accepted: PendingAppend[] = [];
    let groupBytes = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i] as PendingAppend;
      if (p.bytes > max) {
        p.reject(new GatewayError(ErrorCodes.OUTBOX_FULL, `message of ${p.bytes} bytes is larger than the whole outbox budget (outbox.maxBytes = ${max})`, 503));
        continue;
      }
      if (this.opts.fullPolicy === 'reject') {
        // Once one append waits, every later one waits behind it (order per publisher and machine).
        if (this.waiting.length > 0 || this.bytes + groupBytes + p.bytes > max) {
          p.waitingSince ??= Date.now();
          this.waiting.push(p);
          continue;
        }
      } else if (groupBytes + p.bytes > max) {
        // drop-oldest: one group never exceeds the budget by itself; the rest goes to the next group.
        this.pending = batch.slice(i).concat(this.pending);
        this.pendingRows = this.pending.reduce((a, q) => a + q.rows.length, 0);
        this.schedule();
        break;
      }
      groupBytes += p.bytes;
      accepted.push(p);
    }
    if (this.waiting.length > 0) this.armWaitTimer();
    if (accepted.length === 0) return;
    // drop-oldest: free what the group needs beyond the budget; always possible since groupBytes <= max.
    const overflow = Math.max(0, this.bytes + groupBytes - max);
    const started = process.hrtime.bigint();
    const now = Date.now();
    let count = 0;
    let drop = { rows: 0, bytes: 0, inFlight: 0 };
    try {
      this.db.transaction(() => {
        if (overflow > 0) drop = this.dropOldest(overflow);
        for (const p of accepted) {
          for (const r of p.rows) {
            this.stmts.insert.run(r.machine, r.ts, r.data, r.bytes, now);
            count++;
          }
        }
      })();
    } catch (e) {
      const err = isDiskFull(e)
        ? new GatewayError(ErrorCodes.OUTBOX_FULL, `disk full: cannot store readings in ${this.opts.dir} (${(e as Error).message})`, 503, { cause: e })
        : (e as Error);
      for (const p of accepted) p.reject(err);
      return;
    }
    // Counters change only after the transaction committed, so they always match the table.
    this.depth += count - drop.rows;
    this.bytes += groupBytes - drop.bytes;
    if (drop.rows > 0) {
      if (this.flight) this.flight.dropped += drop.inFlight;
      const counted = drop.rows - drop.inFlight;
      if (counted > 0) this.opts.onDrop?.(counted, 'outbox_full_drop_oldest');
      this.emit('dropped', drop.rows);
    }
    this.opts.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9, count);
    for (const p of accepted) p.resolve();
    this.emit('append');
  }

  /** Delete the oldest rows until at least `needBytes` are freed. Runs inside the commit transaction. */
  private dropOldest(needBytes: number): { rows: number; bytes: number; inFlight: number } {
    let freed = 0;
    let n = 0;
    let inFlight = 0;
    let after = 0;
    while (freed < needBytes) {
      const rows = this.stmts.oldestRows.all(after, 500) as { id: number; bytes: number }[];
      if (rows.length === 0) break;
      for (const r of rows) {
        freed += r.bytes;
        n++;
        after = r.id;
        if (this.flight && r.id >= this.flight.lo && r.id <= this.flight.hi) inFlight++;
        if (freed >= needBytes) break;
      }
    }
    if (n > 0) this.stmts.deleteUpTo.run(after);
    return { rows: n, bytes: freed, inFlight };
  }

  private armWaitTimer(): void {
    if (this.waitTimer || this.closed) return;
    this.waitTimer = setTimeout(() => {
      this.waitTimer = undefined;
      this.retryWaiting();
    }, Math.min(250, Math.max(10, this.opts.fullWaitMs / 4)));
  }

  /** Move held appends back into the commit queue as space allows; refuse them once held too long. */
  private retryWaiting(): void {
    if (this.closed) return;
    let room = this.opts.maxBytes - this.bytes - this.pending.reduce((a, p) => a + p.bytes, 0);
    while (this.waiting.length > 0) {
      const p = this.waiting[0] as PendingAppend;
      if (p.bytes > room) break;
      this.waiting.shift();
      room -= p.bytes;
      this.pending.push(p);
      this.pendingRows += p.rows.length;
    }
    // The head has waited longest. Once it is past fullWaitMs every held append is refused, so the
    // publishers are disconnected and resend in their own order, rather than a later message of
    // the same publisher being stored before an earlier one it will resend.
    const head = this.waiting[0];
    if (head && Date.now() - (head.waitingSince ?? Date.now()) >= this.opts.fullWaitMs) {
      const err = new GatewayError(
        ErrorCodes.OUTBOX_FULL,
        `outbox disk budget (outbox.maxBytes = ${this.opts.maxBytes} bytes) is full: the sink is not keeping up or is unreachable`,
        503,
      );
      for (const p of this.waiting.splice(0)) p.reject(err);
    }
    if (this.pending.length > 0) this.schedule();
    if (this.waiting.length > 0) this.armWaitTimer();
  }

  /** Up to `limit` entries after `afterId`, oldest first. */
  read(afterId: number, limit: number): OutboxEntry[] {
    if (this.closed) return [];
    const rows = this.stmts.read.all(afterId, limit) as { id: number; machine: string; ts: number; data: string }[];
    return rows.map((r) => {
      const d = JSON.parse(r.data) as { m: Record<string, number>; s?: number };
      const reading: Reading = { machine: r.machine, ts: r.ts, metrics: d.m };
      if (d.s !== undefined) reading.seq = d.s;
      return { id: r.id, reading };
    });
  }

  /** Id of the oldest waiting reading (null when empty). drop-oldest deletes only below it. */
  oldestId(): number | null {
    if (this.closed) return null;
    const o = this.stmts.oldest.get() as { id: number } | undefined;
    return o ? o.id : null;
  }

  /**
   * The forwarder is writing ids lo..hi. Rows drop-oldest deletes from that range meanwhile are
   * counted as dropped only if the write fails (`endFlight(false)`); if it succeeds they arrived.
   */
  beginFlight(lo: number, hi: number): void {
    this.flight = { lo, hi, dropped: 0 };
  }

  endFlight(delivered: boolean): void {
    const f = this.flight;
    this.flight = null;
    if (f && !delivered && f.dropped > 0) this.opts.onDrop?.(f.dropped, 'outbox_full_drop_oldest');
  }

  /** The sink confirmed everything up to and including `id`: delete it. */
  ack(upToId: number): void {
    if (this.closed) return;
    const s = this.stmts.sumUpTo.get(upToId) as { n: number; b: number };
    if (s.n > 0) {
      this.stmts.deleteUpTo.run(upToId);
      this.depth -= s.n;
      this.bytes -= s.b;
    }
    if (this.waiting.length > 0) this.retryWaiting();
  }

  /**
   * Move refused entries to quarantine (kept, counted, listed over HTTP) so they never block the
   * queue. Returns how many were moved (an id drop-oldest already deleted is skipped).
   */
  quarantine(ids: number[], error: string): number {
    if (this.closed) return 0;
    const now = Date.now();
    let moved = 0;
    let freed = 0;
    let trimmed = 0;
    this.db.transaction(() => {
      for (const id of ids) {
        const row = this.stmts.bytesOf.get(id) as { bytes: number } | undefined;
        if (!row) continue;
        this.stmts.quarantine.run(error.slice(0, 1000), now, id);
        this.stmts.deleteId.run(id);
        moved++;
        freed += row.bytes;
      }
      const over = this.quarantined + moved - this.quarantineKeep;
      if (over > 0) trimmed = this.stmts.trimQuarantine.run(over).changes;
    })();
    this.depth -= moved;
    this.bytes -= freed;
    this.quarantined += moved - trimmed;
    if (trimmed > 0) this.opts.onDrop?.(trimmed, 'quarantine_overflow');
    if (this.waiting.length > 0) this.retryWaiting();
    return moved;
  }

  listQuarantine(limit: number): QuarantinedEntry[] {
    if (this.closed) return [];
    const rows = this.stmts.listQuarantine.all(limit) as { id: number; machine: string; ts: number; data: string; error: string; at: number }[];
    return rows.map((r) => ({ id: r.id, machine: r.machine, ts: r.ts, metrics: (JSON.parse(r.data) as { m: Record<string, number> }).m, error: r.error, at: r.at }));
  }

  stats(): OutboxStats {
    const o = this.closed ? undefined : (this.stmts.oldest.get() as { arrived: number } | undefined);
    return {
      depth: this.depth,
      bytes: this.bytes,
      maxBytes: this.opts.maxBytes,
      oldestArrival: o ? o.arrived : null,
      quarantined: this.quarantined,
      held: this.waiting.length,
    };
  }

  /** Commit what is pending, refuse what is held, then close the database. */
  close(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    // Appends already received are stored if they fit (their publishers may still get the ack).
    // Each round stores at least one append or moves it to `waiting`, so this ends.
    while (this.pending.length > 0) this.commit();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed = true;
    const err = new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503);
    for (const p of this.pending.splice(0)) p.reject(err);
    this.pendingRows = 0;
    for (const p of this.waiting.splice(0)) p.reject(err);
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // best effort: the WAL is replayed on next open anyway
    }
    this.db.close();
  }
}
