/**
 * Durable outbox: every accepted reading is committed here (SQLite WAL) before its publisher gets
 * a PUBACK; the forwarder reads in id order and deletes only what the sink confirmed.
 *
 * - Writer thread: every write (group-commit transaction and its fsync, drop-oldest, acknowledged
 *   deletes, quarantine) runs in a worker thread (worker.ts) on its own connection, one request at
 *   a time in order, so the event loop does not wait for the disk. The main thread groups appends,
 *   serialises them (one message per group) and resolves them when the worker reports the commit;
 *   reads (forwarder, quarantine list, oldest row) use a second connection here (WAL readers never
 *   wait for the writer), except what the in-memory unsent tail answers (tail.ts: the forwarder's
 *   batches and the oldest row, served exactly as the table would). At most one group commit is with the worker at a time; what arrives
 *   meanwhile forms the next group. quarantine and close wait for the worker synchronously
 *   (Atomics.wait), so callers see the table already changed, as before.
 * - Acks (the forwarder's DELETE of what the sink confirmed) do not wait for the worker: it would
 *   first finish a group commit it is running (COMMIT + fsync), then run the DELETE (~0.5 us per
 *   row): milliseconds per forwarder batch during which the event loop sat blocked. The ack is
 *   posted and everything here treats its rows as deleted at once (`ackedUpTo`): the tail drops
 *   them, SQLite reads and the oldest row skip ids <= ackedUpTo, depth/bytes leave them out (if a
 *   commit posted before the ack drops some of them first, the ack is credited back: the worker
 *   reports each dropped row's bytes), and drop-oldest deleting rows of the forwarder's successful
 *   writes before their DELETE ran is no drop (`delivered`). The reply brings the worker's counters
 *   and retries appends held for space (the budget admits against the worker's counters only, so
 *   no append gets in on space not freed yet). At most one ack is with the worker; later ones
 *   coalesce into one upTo, posted when its reply comes: one DELETE per round trip however fast
 *   the sink confirms, and an O(1) record of what is pending. An ack still waits, as before, for a
 *   few rows when nothing else is with the worker (SYNC_ACK_MAX_ROWS: a short wait, and the
 *   counters are exact when ack returns) and when the tail does not hold the rows (after a restart
 *   or a tail overflow: the reply's counters are needed). close waits for every ack posted, so a
 *   restart replays nothing the sink confirmed. An ack whose reply never came (writer thread
 *   failed, process killed) may leave its rows in the table: they are sent again after a restart
 *   (at-least-once, which the sink contract allows: series + timestamp identity keeps one copy);
 *   no reading is lost.
 * - Worker failure: if the worker dies or stops answering (a group commit or an ack unanswered for
 *   SYNC_TIMEOUT_MS), the outbox fails closed: every append
 *   waiting or to come is refused with SMARTOPS_OUTBOX_WORKER (no PUBACK for anything not committed)
 *   and `onFatal` is called once; the gateway then stops (main.ts).
 * - fsync policy (SQLite `synchronous`, https://sqlite.org/pragma.html#pragma_synchronous):
 *   `always` = FULL: in WAL mode the WAL is fsynced at every commit, so an acknowledged reading
 *   survives a power cut. `os` = NORMAL: the WAL is fsynced only at checkpoints; an acknowledged
 *   reading survives a crash of the gateway process (the data is in the OS page cache) but the last
 *   commits before a power cut or kernel crash can be lost. Either way the database stays consistent.
 * - Disk budget: the bytes of waiting readings (JSON payload + machine id + a fixed per-row overhead)
 *   are counted exactly (by the worker, in step with every insert/delete it commits; the main
 *   thread takes its figures from each reply). When an append does not fit, `reject` holds it
 *   (back-pressure: no PUBACK) and refuses it after `fullWaitMs`; `drop-oldest` deletes the oldest
 *   waiting rows in the same transaction as the insert, counted. The SQLite file itself is larger
 *   than the logical bytes (pages, indexes, free pages reused after deletes) and the WAL is
 *   truncated to JOURNAL_SIZE_LIMIT after checkpoints.
 * - Order: ids are AUTOINCREMENT (never reused) and commits are serialized, so readings leave in
 *   the order they were accepted; a held append keeps every later append behind it.
 * - Drops are reported through `onDrop` exactly: rows deleted by drop-oldest while the forwarder
 *   has them in a write in flight are counted only if that write fails (otherwise they arrived);
 *   rows of successful writes whose ack has not reached the table yet are not counted either.
 */
import Database from 'better-sqlite3';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { Reading } from '../contract/reading.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { CommittedReply, Counters, Reply, Request, WorkerInit } from './protocol.js';
import { UnsentTail, type OutboxEntry, type TailStats } from './tail.js';

export type { OutboxEntry, TailStats } from './tail.js';

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
  /** Called once if the writer thread fails; the outbox refuses every append from then on. */
  onFatal?: (err: GatewayError) => void;
  /**
   * Most rows / budget bytes of the unsent tail kept in memory for the forwarder (tail.ts; default
   * 20000 rows, 8 MiB). Beyond them the forwarder reads SQLite until the table fits again.
   */
  memoryRows?: number;
  memoryBytes?: number;
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

/** Called once per append: null when committed, else why it was not stored. */
export type AppendDone = (err: GatewayError | null) => void;

interface PendingAppend {
  readings: readonly Reading[];
  /** Each reading's outbox row payload (`{"m":{...},"s":seq}`), in step with `readings`. */
  data: string[];
  bytes: number;
  done: AppendDone;
  /** When a `reject`-policy append started waiting for space. */
  waitingSince?: number;
}

/** Rows an ack deletes that the counters (the worker's, at its last reply) still hold. */
interface PendingAck {
  upTo: number;
  rows: number;
  bytes: number;
}

/** The group commit the worker is storing now. */
interface InflightCommit {
  seq: number;
  postedAt: number;
  /** The rows' arrival time (the `arrived` column). */
  now: number;
  accepted: PendingAppend[];
  bytes: number;
}

/** Fixed per-row overhead (rowid, ts, arrival, bytes column, record header) added to the payload length. */
const ROW_OVERHEAD = 48;
/** After a checkpoint the WAL file is truncated to this size, so it cannot stay large after a burst. */
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** Longest wait for the worker (a group commit, ack, quarantine, close) before it is declared failed. */
const SYNC_TIMEOUT_MS = 15_000;
/** Default bounds of the in-memory unsent tail, a few forwarder batches (main.ts passes max(20000, 4 x sink.batchSize) rows). */
const MEMORY_ROWS = 20_000;
const MEMORY_BYTES = 8 * 1024 * 1024;
/**
 * An ack of at most this many rows waits for its DELETE when nothing else is with the worker: the
 * wait is then ~0.5 us per row (0.1 ms here) and the counters are exact when ack returns. A larger
 * one (the forwarder's batches under load: 1.4 ms for 3,000 rows measured) is posted.
 */
const SYNC_ACK_MAX_ROWS = 256;
/** Retry of an acknowledged DELETE the worker failed to run (e.g. disk full); the rows stay counted as deleted. */
const ACK_RETRY_MS = 1000;

/** Bytes a row counts against the budget. Machine ids and metric names are ASCII by contract and numbers serialize as ASCII: length = bytes. */
function rowBytes(data: string, machine: string): number {
  return data.length + machine.length + ROW_OVERHEAD;
}

/** Tell one append its outcome; a throwing callback must not keep the rest of its group waiting. */
function settle(p: PendingAppend, err: GatewayError | null): void {
  try {
    p.done(err);
  } catch (e) {
    process.nextTick(() => {
      throw e;
    });
  }
}

function isDiskFull(code: string | undefined): boolean {
  return code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE';
}

let devWorkerCode: string | undefined;

/**
 * The worker script next to this module: compiled .js in production. In development (tests, tsx)
 * the .ts source, transpiled once per process with the TypeScript compiler and run as CommonJS:
 * node's --import flag does not reach worker threads, and registering tsx in each worker costs
 * ~300 ms per outbox opened. No node flags are passed on: the worker needs none.
 */
function workerScript(): { script: string | URL; eval: boolean } {
  if (!fileURLToPath(import.meta.url).endsWith('.ts')) return { script: new URL('./worker.js', import.meta.url), eval: false };
  if (devWorkerCode === undefined) {
    const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
    const src = readFileSync(new URL('./worker.ts', import.meta.url), 'utf8');
    const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
    // Resolve its imports from its own directory, not from the process's working directory.
    const self = JSON.stringify(fileURLToPath(new URL('./worker.ts', import.meta.url)));
    devWorkerCode = `(function (require) {\n${js}\n})(require('node:module').createRequire(${self}));`;
  }
  return { script: devWorkerCode, eval: true };
}

/** How many of the ascending `ids` lie in lo..hi. */
function countIn(ids: Float64Array, lo: number, hi: number): number {
  let n = 0;
  for (const id of ids) {
    if (id > hi) break;
    if (id >= lo) n++;
  }
  return n;
}

export class Outbox extends EventEmitter {
  /** Read-only use: the worker owns every write. */
  private readonly db: Database.Database;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal: Int32Array;
  private readonly opts: OutboxOptions;
  private seq = 0;
  private pending: PendingAppend[] = [];
  /** Rows in `pending` (the next group commit), kept in step with it for ingest back-pressure. */
  private pendingRows = 0;
  private waiting: PendingAppend[] = [];
  private inflight: InflightCommit | undefined;
  /** The commit timer fired while a commit was with the worker: commit as soon as it is back. */
  private due = false;
  private timer: NodeJS.Timeout | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  /** Checks that a group commit with the worker comes back (a hung writer must not hang ingest silently). */
  private readonly watchdog: NodeJS.Timeout;
  private closed = false;
  private failed: GatewayError | undefined;
  private readonly counters: Counters;
  /** Ids the forwarder is writing right now, and how many of them drop-oldest deleted meanwhile. */
  private flight: { lo: number; hi: number; dropped: number } | null = null;
  /**
   * The flights that succeeded since no ack was pending (ids lo..hi, contiguous from the head: the
   * forwarder reads from it): a commit the worker ran before their acks' DELETE may report drops in
   * that range after they ended; those rows arrived, so they are not counted.
   */
  private delivered: { lo: number; hi: number } | null = null;
  /** The committed rows not yet acknowledged, in memory (a prefix of the table: see tail.ts). */
  private readonly tail: UnsentTail;
  /** Highest id the sink confirmed: every row up to it counts as deleted, whether its DELETE ran, is with the worker or is queued. */
  private ackedUpTo = 0;
  /** The ack with the worker (at most one). */
  private ackOut: (PendingAck & { seq: number; postedAt: number }) | undefined;
  /** Acks made while one is with the worker (or whose DELETE failed), coalesced: posted when its reply comes. */
  private ackQueued: PendingAck | undefined;
  private ackRetry: NodeJS.Timeout | undefined;
  /** A posted DELETE failed: thrown by the next ack() (the forwarder logs it), retried meanwhile. */
  private ackError: GatewayError | undefined;
  private ackWaiters: (() => void)[] = [];
  /** A refill read rows of the commit with the worker before its reply: acks wait until it comes (see ack()). */
  private tailAhead = false;
  private readonly ackCounts = { async: 0, sync: 0, coalesced: 0, retried: 0, droppedFirst: 0 };
  private readonly stmts: {
    read: Database.Statement;
    oldest: Database.Statement;
    listQuarantine: Database.Statement;
  };

  constructor(opts: OutboxOptions) {
    super();
    this.opts = opts;
    const file = join(opts.dir, 'outbox.sqlite');
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
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
      read: this.db.prepare('SELECT id, machine, ts, data, bytes, arrived FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
      // Rows up to ackedUpTo are deleted or being deleted: never served again.
      oldest: this.db.prepare('SELECT id, arrived FROM outbox WHERE id > ? ORDER BY id LIMIT 1'),
      listQuarantine: this.db.prepare('SELECT id, machine, ts, data, error, at FROM quarantine ORDER BY id DESC LIMIT ?'),
    };
    const row = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
    this.counters = { depth: row.n, bytes: row.b, quarantined: (this.db.prepare('SELECT COUNT(*) AS n FROM quarantine').get() as { n: number }).n };
    // Rows left from before (a restart): read back from SQLite until a read returns the whole table.
    this.tail = new UnsentTail(opts.memoryRows ?? MEMORY_ROWS, opts.memoryBytes ?? MEMORY_BYTES, row.n === 0);

    const init: WorkerInit = {
      file,
      fsync: opts.fsync,
      maxBytes: opts.maxBytes,
      fullPolicy: opts.fullPolicy,
      quarantineKeep: opts.quarantineKeep ?? 10000,
      journalSizeLimit: JOURNAL_SIZE_LIMIT,
    };
    // [0]: bumped after every reply; [1]: set to 1 by a worker that is dying.
    const shared = new SharedArrayBuffer(8);
    this.signal = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const script = workerScript();
    this.worker = new Worker(script.script, {
      eval: script.eval,
      workerData: { port: port2, signal: shared, init },
      transferList: [port2],
      execArgv: [],
    });
    // Neither keeps the process alive by itself; the port is referenced while a commit is out.
    this.worker.unref();
    this.port.on('message', (m: Reply) => this.onReply(m));
    this.port.unref();
    this.worker.on('error', (e) => this.fail(`outbox writer thread failed: ${e.message}`, e));
    this.worker.on('message', (m: { fatal?: string }) => this.fail(`outbox writer thread failed: ${m.fatal ?? 'unknown error'}`));
    this.worker.on('exit', (code) => {
      if (!this.closed) this.fail(`outbox writer thread exited unexpectedly (exit code ${code})`);
    });
    this.watchdog = setInterval(() => {
      const c = this.inflight;
      if (c && Date.now() - c.postedAt > SYNC_TIMEOUT_MS) this.fail(`outbox writer thread did not finish a group commit within ${SYNC_TIMEOUT_MS} ms`);
      const a = this.ackOut;
      if (a && Date.now() - a.postedAt > SYNC_TIMEOUT_MS) this.fail(`outbox writer thread did not answer an ack within ${SYNC_TIMEOUT_MS} ms`);
    }, 1000);
    this.watchdog.unref();
  }

  /**
   * Resolves once the readings are committed (and fsynced with fsync=always). Rejects with
   * SMARTOPS_OUTBOX_FULL when they cannot be stored (budget full past fullWaitMs, message larger
   * than the budget, disk full), SMARTOPS_OUTBOX_CLOSED while stopping and SMARTOPS_OUTBOX_WORKER
   * after the writer thread failed.
   */
  append(readings: readonly Reading[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.appendThen(readings, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * `append` with a callback, called exactly once (synchronously when refused at once): the ingest
   * path uses it so that a message costs no promise of its own here. A callback that throws does
   * not stop the others of its group; the error is rethrown on the next tick, uncaught, as a
   * rejected promise with no handler would be.
   */
  appendThen(readings: readonly Reading[], done: AppendDone): void {
    if (this.failed) return done(this.failed);
    if (this.closed) return done(new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503));
    const data: string[] = new Array<string>(readings.length);
    let bytes = 0;
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i] as Reading;
      // The row's JSON, {"m":{...}} or {"m":{...},"s":<seq>}, without a wrapper object per reading (~0.1 us less, bench/README).
      const d = r.seq === undefined ? `{"m":${JSON.stringify(r.metrics)}}` : `{"m":${JSON.stringify(r.metrics)},"s":${JSON.stringify(r.seq)}}`;
      data[i] = d;
      bytes += rowBytes(d, r.machine);
    }
    const p: PendingAppend = { readings, data, bytes, done };
    if (this.waiting.length > 0) {
      // Keep arrival order: nobody overtakes a publisher already held for space.
      p.waitingSince = Date.now();
      this.waiting.push(p);
      this.armWaitTimer();
      return;
    }
    this.pending.push(p);
    this.pendingRows += readings.length;
    this.schedule();
  }

  /**
   * Readings the next group commit will store (not those held for space under the reject policy,
   * nor the group the worker is storing now). Ingest back-pressure bounds this; the group with the
   * worker was such a next group, so at most twice the bound waits for a commit, and the next group
   * fills while the worker commits the previous one.
   */
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
    if (this.inflight) {
      this.due = true;
      return;
    }
    try {
      this.commitGroup();
    } finally {
      this.emit('settled');
    }
  }

  /** Admit what fits from `pending` and hand it to the worker. */
  private commitGroup(): void {
    const batch = this.pending;
    this.pending = [];
    this.pendingRows = 0;
    if (batch.length === 0) return;
    if (this.failed) {
      for (const p of batch) settle(p, this.failed);
      return;
    }
    const max = this.opts.maxBytes;
    const accepted: PendingAppend[] = [];
    let groupBytes = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i] as PendingAppend;
      if (p.bytes > max) {
        settle(p, new GatewayError(ErrorCodes.OUTBOX_FULL, `message of ${p.bytes} bytes is larger than the whole outbox budget (outbox.maxBytes = ${max})`, 503));
        continue;
      }
      if (this.opts.fullPolicy === 'reject') {
        // Once one append waits, every later one waits behind it (order per publisher and machine).
        // No other commit is with the worker now, so the counters are current; an ack with the
        // worker frees space only when its reply comes (then retryWaiting), never before.
        if (this.waiting.length > 0 || this.counters.bytes + groupBytes + p.bytes > max) {
          p.waitingSince ??= Date.now();
          this.waiting.push(p);
          continue;
        }
      } else if (groupBytes + p.bytes > max) {
        // drop-oldest: one group never exceeds the budget by itself; the rest goes to the next group.
        this.pending = batch.slice(i).concat(this.pending);
        this.pendingRows = this.pending.reduce((a, q) => a + q.readings.length, 0);
        this.schedule();
        break;
      }
      groupBytes += p.bytes;
      accepted.push(p);
    }
    if (this.waiting.length > 0) this.armWaitTimer();
    if (accepted.length === 0) return;
    const machine: string[] = [];
    const ts: number[] = [];
    const data: string[] = [];
    const bytes: number[] = [];
    for (const p of accepted) {
      for (let i = 0; i < p.readings.length; i++) {
        const r = p.readings[i] as Reading;
        const d = p.data[i] as string;
        machine.push(r.machine);
        ts.push(r.ts);
        data.push(d);
        bytes.push(rowBytes(d, r.machine));
      }
    }
    const seq = ++this.seq;
    const now = Date.now();
    this.inflight = { seq, postedAt: now, now, accepted, bytes: groupBytes };
    this.holdPort();
    this.post({ t: 'commit', seq, now, machine, ts, data, bytes, groupBytes });
  }

  private post(m: Request): void {
    this.port.postMessage(m);
  }

  /** The port keeps the process alive while a reply is due to a commit or an ack. */
  private holdPort(): void {
    if (this.inflight || this.ackOut) this.port.ref();
    else this.port.unref();
  }

  /** Every reply from the worker, in order (from the port's event, or drained by a synchronous wait). */
  private onReply(m: Reply): void {
    const a = this.ackOut;
    if (a && m.seq === a.seq) return this.ackReplied(m, a);
    const c = this.inflight;
    if (!c || m.seq !== c.seq) return; // replies to synchronous calls are taken by call()
    this.inflight = undefined;
    this.tailAhead = false;
    this.holdPort();
    try {
      if (m.t === 'committed') this.committed(m, c);
      else {
        const err =
          m.t === 'failed' && isDiskFull(m.code)
            ? new GatewayError(ErrorCodes.OUTBOX_FULL, `disk full: cannot store readings in ${this.opts.dir} (${m.message})`, 503)
            : new GatewayError(ErrorCodes.OUTBOX_WRITE, `cannot store readings in ${this.opts.dir}: ${m.t === 'failed' ? m.message : `unexpected reply ${m.t}`}`, 503);
        for (const p of c.accepted) settle(p, err);
      }
    } finally {
      if (this.due && !this.closed) {
        this.due = false;
        this.commit();
      }
    }
  }

  private committed(m: CommittedReply, c: InflightCommit): void {
    // Counters change only after the transaction committed, so they always match the table.
    this.setCounters(m);
    const ids = m.dropIds ?? new Float64Array(0);
    // Rows acknowledged while this commit was with the worker: its drop-oldest deleted them first
    // (they are the oldest), so the pending ack no longer deletes them (the counters above already
    // lost them). Whether they count as dropped is decided below, as for any row: by the
    // forwarder's writes (they arrived if a write that carried them succeeded).
    for (let i = 0; i < ids.length && (ids[i] as number) <= this.ackedUpTo; i++) {
      this.ackCounts.droppedFirst++;
      this.unpend(ids[i] as number, m.dropBytes ? (m.dropBytes[i] as number) : 0);
    }
    // The tail follows the transaction: drop-oldest deleted every row up to its last id, then the inserts.
    if (ids.length > 0) this.tail.deleteUpTo(ids[ids.length - 1] as number);
    if (this.tail.beginGroup(m.firstId, m.count, c.bytes)) {
      let id = m.firstId;
      for (const p of c.accepted) {
        for (let i = 0; i < p.readings.length; i++) {
          const r = p.readings[i] as Reading;
          const d = p.data[i] as string;
          this.tail.push(id++, r, c.now, rowBytes(d, r.machine), d);
        }
      }
    }
    this.tail.check(this.depth());
    if (m.dropRows > 0) {
      let inFlight = 0;
      if (this.flight) {
        const n = countIn(ids, this.flight.lo, this.flight.hi);
        this.flight.dropped += n;
        inFlight += n;
      }
      if (this.delivered) inFlight += countIn(ids, this.delivered.lo, this.delivered.hi);
      const counted = m.dropRows - inFlight;
      if (counted > 0) this.opts.onDrop?.(counted, 'outbox_full_drop_oldest');
      this.emit('dropped', m.dropRows);
    }
    this.opts.onCommit?.(m.seconds, m.count);
    for (const p of c.accepted) settle(p, null);
    this.emit('append');
  }

  private setCounters(c: Counters): void {
    this.counters.depth = c.depth;
    this.counters.bytes = c.bytes;
    this.counters.quarantined = c.quarantined;
  }

  /** Rows waiting: the worker's count less what the acks with it or queued delete. */
  private depth(): number {
    return this.counters.depth - (this.ackOut ? this.ackOut.rows : 0) - (this.ackQueued ? this.ackQueued.rows : 0);
  }

  private waitingBytes(): number {
    return this.counters.bytes - (this.ackOut ? this.ackOut.bytes : 0) - (this.ackQueued ? this.ackQueued.bytes : 0);
  }

  /** Drop-oldest deleted acknowledged row `id` before its ack ran: that ack deletes one row fewer. */
  private unpend(id: number, bytes: number): void {
    const a = this.ackOut && id <= this.ackOut.upTo ? this.ackOut : this.ackQueued;
    if (a && id <= a.upTo) {
      a.rows--;
      a.bytes -= bytes;
    }
  }

  /**
   * Send a request and wait for its reply synchronously (replies before it, e.g. a group commit's,
   * are handled on the way, in order). Throws SMARTOPS_OUTBOX_WORKER if the worker does not answer.
   */
  private call(m: Request): Reply {
    if (this.failed) throw this.failed;
    this.post(m);
    const deadline = Date.now() + SYNC_TIMEOUT_MS;
    for (;;) {
      const seen = Atomics.load(this.signal, 0);
      let r = receiveMessageOnPort(this.port);
      while (r) {
        const reply = r.message as Reply;
        if (reply.seq === m.seq) return reply;
        this.onReply(reply);
        r = receiveMessageOnPort(this.port);
      }
      if (this.failed) throw this.failed;
      if (Atomics.load(this.signal, 1) === 1) throw this.fail('outbox writer thread failed (uncaught error)');
      if (Date.now() > deadline) throw this.fail(`outbox writer thread did not answer a ${m.t} request within ${SYNC_TIMEOUT_MS} ms`);
      Atomics.wait(this.signal, 0, seen, 100);
    }
  }

  /** Post the queued ack (nothing is with the worker: at most one ack is). */
  private postQueued(): void {
    if (this.ackRetry) clearTimeout(this.ackRetry);
    this.ackRetry = undefined;
    const q = this.ackQueued;
    if (!q || this.ackOut || this.closed || this.failed) return;
    this.ackQueued = undefined;
    const seq = ++this.seq;
    this.ackOut = { ...q, seq, postedAt: Date.now() };
    this.holdPort();
    this.post({ t: 'ack', seq, upTo: q.upTo });
  }

  /** The reply to the ack that was with the worker. */
  private ackReplied(m: Reply, a: PendingAck): void {
    this.ackOut = undefined;
    if (m.t === 'acked') {
      this.setCounters(m);
      this.postQueued();
    } else {
      // The DELETE failed (e.g. disk full) and changed nothing. The rows were delivered: they stay
      // counted as deleted (never served or sent again) and the DELETE is retried; the next ack()
      // reports the error.
      this.ackError = new GatewayError(
        ErrorCodes.OUTBOX_WRITE,
        `cannot delete readings the sink confirmed from ${this.opts.dir}: ${m.t === 'failed' ? m.message : `unexpected reply ${m.t}`}; retrying (they are not sent again unless the gateway restarts first)`,
        503,
      );
      this.requeue(a);
      this.armAckRetry();
    }
    this.holdPort();
    this.tail.check(this.depth());
    this.notifyAcked();
    if (this.waiting.length > 0) this.retryWaiting();
  }

  private armAckRetry(): void {
    if (this.ackRetry || this.closed || this.failed) return;
    this.ackRetry = setTimeout(() => {
      this.ackRetry = undefined;
      this.ackCounts.retried++;
      this.postQueued();
    }, ACK_RETRY_MS);
    this.ackRetry.unref();
  }

  /** Put an ack whose DELETE did not run back into the queue (merged with what is queued). */
  private requeue(a: PendingAck): void {
    const q = this.ackQueued;
    this.ackQueued = { upTo: Math.max(a.upTo, q ? q.upTo : 0), rows: a.rows + (q ? q.rows : 0), bytes: a.bytes + (q ? q.bytes : 0) };
  }

  private notifyAcked(): void {
    if ((this.ackOut || this.ackQueued) && !this.closed && !this.failed) return;
    for (const w of this.ackWaiters.splice(0)) w();
  }

  /** Wait (synchronously) until no group commit is with the worker. */
  private settleInflight(): void {
    while (this.inflight && !this.failed) {
      // A no-op round trip (deletes nothing): every reply before its own, the commit's, is handled first.
      const r = this.call({ t: 'ack', seq: ++this.seq, upTo: 0 });
      if (r.t === 'acked') this.setCounters(r);
    }
  }

  private failedReply(r: Reply): never {
    throw new GatewayError(ErrorCodes.OUTBOX_WRITE, `outbox write failed in ${this.opts.dir}: ${r.t === 'failed' ? r.message : `unexpected reply ${r.t}`}`, 503);
  }

  /**
   * The writer thread is gone: refuse everything not committed, once, and tell the gateway.
   * Returns the error (the first one if it had already failed), for a caller to throw.
   */
  private fail(message: string, cause?: unknown): GatewayError {
    if (this.failed) return this.failed;
    const err = new GatewayError(ErrorCodes.OUTBOX_WORKER, `${message}; readings can no longer be stored (none is acknowledged): restart the gateway`, 503, { cause });
    // Closed already (the worker ending with it): nothing is left to refuse or report.
    if (this.closed) return err;
    this.failed = err;
    clearInterval(this.watchdog);
    if (this.timer) clearTimeout(this.timer);
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.timer = undefined;
    this.waitTimer = undefined;
    if (this.ackRetry) clearTimeout(this.ackRetry);
    this.ackRetry = undefined;
    const c = this.inflight;
    this.inflight = undefined;
    // An ack posted or queued without its reply: its rows stay counted as deleted here (they were
    // delivered); the table may still hold them, so a restart may send them again (at-least-once).
    if (this.ackOut) this.requeue(this.ackOut);
    this.ackOut = undefined;
    this.port.unref();
    for (const p of [...(c ? c.accepted : []), ...this.pending.splice(0), ...this.waiting.splice(0)]) settle(p, err);
    this.pendingRows = 0;
    // A commit may have ended in the table without its reply: from now on reads ask SQLite.
    this.tail.close();
    this.notifyAcked();
    this.emit('settled');
    this.opts.onFatal?.(err);
    return err;
  }

  private armWaitTimer(): void {
    if (this.waitTimer || this.closed || this.failed) return;
    this.waitTimer = setTimeout(() => {
      this.waitTimer = undefined;
      this.retryWaiting();
    }, Math.min(250, Math.max(10, this.opts.fullWaitMs / 4)));
  }

  /** Move held appends back into the commit queue as space allows; refuse them once held too long. */
  private retryWaiting(): void {
    if (this.closed || this.failed) return;
    // The group with the worker is not in the counters yet: count it as taken. Acked rows whose
    // DELETE has not replied yet still take their space (the worker frees it only then).
    let room = this.opts.maxBytes - this.counters.bytes - (this.inflight ? this.inflight.bytes : 0) - this.pending.reduce((a, p) => a + p.bytes, 0);
    while (this.waiting.length > 0) {
      const p = this.waiting[0] as PendingAppend;
      if (p.bytes > room) break;
      this.waiting.shift();
      room -= p.bytes;
      this.pending.push(p);
      this.pendingRows += p.readings.length;
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
      for (const p of this.waiting.splice(0)) settle(p, err);
    }
    if (this.pending.length > 0) this.schedule();
    if (this.waiting.length > 0) this.armWaitTimer();
  }

  /**
   * Up to `limit` entries after `afterId`, oldest first: from the in-memory tail when it holds
   * them (exactly what the table holds, see tail.ts), else from SQLite.
   */
  read(afterId: number, limit: number): OutboxEntry[] {
    if (this.closed) return [];
    const hit = this.tail.read(afterId, limit);
    if (hit) return hit;
    // Acknowledged rows may still be in the table (their DELETE is with the worker or queued): skip them.
    const rows = this.stmts.read.all(Math.max(afterId, this.ackedUpTo), limit) as { id: number; machine: string; ts: number; data: string; bytes: number; arrived: number }[];
    const out: (OutboxEntry & { arrived: number; bytes: number })[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as (typeof rows)[number];
      const d = JSON.parse(r.data) as { m: Record<string, number>; s?: number };
      const reading: Reading = { machine: r.machine, ts: r.ts, metrics: d.m };
      if (d.s !== undefined) reading.seq = d.s;
      out[i] = { id: r.id, reading, arrived: r.arrived, bytes: r.bytes };
    }
    // Fewer rows than asked from the very start: the whole table (less what is acknowledged). The
    // tail can hold it again. If that includes the commit with the worker (done, reply not handled
    // yet), the counters do not hold its rows yet: acks wait for its reply (tailAhead).
    if (afterId < 1 && rows.length < limit && this.tail.refill(out) && this.inflight) this.tailAhead = true;
    return out.map((e) => ({ id: e.id, reading: e.reading }));
  }

  /** Id of the oldest waiting reading (null when empty). drop-oldest deletes only below it. */
  oldestId(): number | null {
    if (this.closed) return null;
    const t = this.tail.oldestId();
    if (t !== undefined) return t;
    const o = this.stmts.oldest.get(this.ackedUpTo) as { id: number } | undefined;
    return o ? o.id : null;
  }

  /** The in-memory tail's size and how many reads it answered (for /metrics). */
  memoryStats(): TailStats {
    return this.tail.stats();
  }

  /**
   * The forwarder is writing ids lo..hi. Rows drop-oldest deletes from that range meanwhile are
   * counted as dropped only if the write fails (`endFlight(false)`); if it succeeds they arrived.
   */
  beginFlight(lo: number, hi: number): void {
    this.flight = { lo, hi, dropped: 0 };
    // Earlier flights' rows are deleted once no ack is pending: no drop can report them any more.
    if (!this.ackOut && !this.ackQueued) this.delivered = null;
  }

  endFlight(delivered: boolean): void {
    const f = this.flight;
    this.flight = null;
    if (f && delivered) {
      const d = this.delivered;
      this.delivered = d ? { lo: Math.min(d.lo, f.lo), hi: Math.max(d.hi, f.hi) } : { lo: f.lo, hi: f.hi };
    }
    if (f && !delivered && f.dropped > 0) this.opts.onDrop?.(f.dropped, 'outbox_full_drop_oldest');
  }

  /**
   * The sink confirmed everything up to and including `id`: delete it. From the return on, those
   * rows are gone for every read and figure here; the DELETE itself may still be with the writer
   * thread (see the header: asynchronous when a group commit is with it). Throws
   * SMARTOPS_OUTBOX_WORKER after the writer thread failed, and SMARTOPS_OUTBOX_WRITE if this
   * DELETE (when waited for) or an earlier posted one failed (that one is retried).
   */
  ack(upToId: number): void {
    if (this.failed) throw this.failed;
    if (this.closed) return;
    const err = this.ackError;
    this.ackError = undefined;
    if (upToId > this.ackedUpTo) {
      const busy = this.inflight !== undefined || this.ackOut !== undefined;
      if (!this.tailAhead && this.tail.holdsUpTo(upToId) && (busy || this.tail.countUpTo(upToId) > SYNC_ACK_MAX_ROWS)) this.ackAsync(upToId);
      else this.ackSync(upToId);
    }
    if (err) throw err;
  }

  /** Count the rows as deleted now, post (or coalesce) the DELETE, do not wait. */
  private ackAsync(upTo: number): void {
    // The tail holds every row up to upTo, so what it removes is exactly what the DELETE will.
    const d = this.tail.deleteUpTo(upTo);
    this.ackedUpTo = upTo;
    const q = this.ackQueued;
    this.ackQueued = { upTo, rows: d.rows + (q ? q.rows : 0), bytes: d.bytes + (q ? q.bytes : 0) };
    this.ackCounts.async++;
    if (this.ackOut) this.ackCounts.coalesced++;
    else this.postQueued();
  }

  /** Delete and wait for the reply (replies before it, a posted ack's too, are handled on the way). */
  private ackSync(upTo: number): void {
    // This DELETE covers what is queued (upTo >= its upTo).
    const q = this.ackQueued;
    this.ackQueued = undefined;
    if (this.ackRetry) clearTimeout(this.ackRetry);
    this.ackRetry = undefined;
    let r: Reply;
    try {
      r = this.call({ t: 'ack', seq: ++this.seq, upTo });
    } catch (e) {
      this.ackQueued = q; // the worker failed: fail() has stopped everything
      throw e;
    }
    if (r.t !== 'acked') {
      // Changed nothing: what was queued is retried with the next ack; these rows are sent again.
      if (q) {
        this.requeue(q);
        this.armAckRetry();
      }
      this.failedReply(r);
    }
    // A failed posted ack's reply handled on the way re-queued its rows: this DELETE covered them.
    this.ackQueued = undefined;
    if (this.ackRetry) clearTimeout(this.ackRetry);
    this.ackRetry = undefined;
    // Only ids that were rows: a later commit's rows (higher ids) are not acknowledged by this.
    this.ackedUpTo = Math.max(this.ackedUpTo, r.maxId);
    this.ackCounts.sync++;
    this.setCounters(r);
    this.tail.deleteUpTo(upTo);
    this.tail.check(this.depth());
    this.notifyAcked();
    if (this.waiting.length > 0) this.retryWaiting();
  }

  /** Resolves when no acknowledged DELETE is with the writer thread or queued (or the outbox closed or failed). */
  whenAcked(): Promise<void> {
    if ((!this.ackOut && !this.ackQueued) || this.closed || this.failed) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push(resolve));
  }

  /**
   * How acks went: posted without waiting, waited for, coalesced into one already with the worker,
   * retried after a failure; and acknowledged rows drop-oldest deleted before their DELETE ran.
   */
  ackStats(): { async: number; sync: number; coalesced: number; retried: number; droppedFirst: number } {
    return { ...this.ackCounts };
  }

  /**
   * Move refused entries to quarantine (kept, counted, listed over HTTP) so they never block the
   * queue. Returns how many were moved (an id drop-oldest already deleted is skipped).
   */
  quarantine(ids: number[], error: string): number {
    if (this.failed) throw this.failed;
    if (this.closed) return 0;
    // Synchronous: rare (a reading the sink refuses on its own) and its caller needs `moved`. An
    // acknowledged id counts as deleted (delivered) even if its DELETE has not run: skipped.
    const live = ids.filter((id) => id > this.ackedUpTo);
    if (live.length === 0) return 0;
    const r = this.call({ t: 'quarantine', seq: ++this.seq, ids: live, error: error.slice(0, 1000), now: Date.now() });
    if (r.t !== 'quarantined') this.failedReply(r);
    this.setCounters(r);
    this.tail.remove(live);
    this.tail.check(this.depth());
    if (r.trimmed > 0) this.opts.onDrop?.(r.trimmed, 'quarantine_overflow');
    if (this.waiting.length > 0) this.retryWaiting();
    return r.moved;
  }

  listQuarantine(limit: number): QuarantinedEntry[] {
    if (this.closed) return [];
    const rows = this.stmts.listQuarantine.all(limit) as { id: number; machine: string; ts: number; data: string; error: string; at: number }[];
    return rows.map((r) => ({ id: r.id, machine: r.machine, ts: r.ts, metrics: (JSON.parse(r.data) as { m: Record<string, number> }).m, error: r.error, at: r.at }));
  }

  stats(): OutboxStats {
    let oldestArrival = this.closed ? null : this.tail.oldestArrival();
    if (oldestArrival === undefined) {
      const o = this.stmts.oldest.get(this.ackedUpTo) as { arrived: number } | undefined;
      oldestArrival = o ? o.arrived : null;
    }
    return {
      depth: this.depth(),
      bytes: this.waitingBytes(),
      maxBytes: this.opts.maxBytes,
      oldestArrival,
      quarantined: this.counters.quarantined,
      held: this.waiting.length,
    };
  }

  /** Test hook (fault injection): make the writer thread die with an uncaught error. */
  crashWorkerForTest(): void {
    this.post({ t: 'crash', seq: ++this.seq });
  }

  /** Commit what is pending, refuse what is held, then close the database and end the worker. */
  close(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.timer = undefined;
    this.waitTimer = undefined;
    // Appends already received are stored if they fit (their publishers may still get the ack).
    // Each round stores at least one append or moves it to `waiting`, so this ends.
    try {
      this.settleInflight();
      while (this.pending.length > 0 && !this.failed) {
        this.due = false;
        this.commit();
        this.settleInflight();
      }
      // Every DELETE the sink confirmed reaches the table first: a restart replays none of it.
      if ((this.ackOut || this.ackQueued) && !this.failed) this.ackSync(this.ackedUpTo);
    } catch {
      // the worker failed: fail() already refused what it had
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const err = this.failed ?? new GatewayError(ErrorCodes.OUTBOX_CLOSED, 'outbox is closed (gateway stopping)', 503);
    for (const p of this.pending.splice(0)) settle(p, err);
    this.pendingRows = 0;
    for (const p of this.waiting.splice(0)) settle(p, err);
    if (!this.failed) {
      try {
        this.call({ t: 'close', seq: ++this.seq });
      } catch {
        // fail() reported it; the WAL is replayed on next open anyway
      }
    }
    this.closed = true;
    if (this.ackRetry) clearTimeout(this.ackRetry);
    this.ackRetry = undefined;
    this.notifyAcked();
    this.tail.close();
    clearInterval(this.watchdog);
    this.port.close();
    void this.worker.terminate();
    this.db.close();
  }
}
