/**
 * The unsent tail of the outbox, in memory: the committed rows the sink has not confirmed yet, as
 * the main thread handed them to the writer thread, so the forwarder's read (and the oldest row's
 * arrival, asked on every forwarder turn) costs no SQLite query, no JSON.parse and no row objects.
 *
 * Invariant (tested against SQLite in test/gateway/outbox-tail.test.ts): the tail is a PREFIX of
 * the outbox table as of the last writer-thread reply the main thread handled, less the rows
 * acknowledged since (ids <= the outbox's acked horizon, whose DELETE is posted or queued: the
 * outbox treats them as deleted): it holds every such table row with id <= `covered`, with the same
 * id, machine, ts, metrics, seq and arrival, in id order, and nothing else. So a read it can answer
 * from rows <= `covered` is exactly what `SELECT ... FROM outbox WHERE id > ? ORDER BY id LIMIT ?`
 * returns once those DELETEs ran. `complete` adds: no table row has an id above `covered` (the tail
 * is the whole table), so a read that runs past its end is exact too. Each change to the table
 * keeps it:
 * - group commit: its rows are appended only while `complete`, if their ids are consecutive (the
 *   worker checks) and they fit the caps; otherwise `complete` becomes false and nothing is added
 *   until a SQLite read returns the whole table again (`refill`);
 * - ack (DELETE id <= upTo) and drop-oldest (DELETE id <= last dropped id): the same prefix is
 *   removed here, for an ack when it is posted (before the writer thread ran it); quarantine: the
 *   moved ids are removed (an id not here was not in the table);
 * - a failed request changed nothing; held appends (reject policy) are not committed, not here;
 * - close or writer-thread failure: cleared and never refilled.
 * A commit the worker finished whose reply is not handled yet is not visible here (nor in the
 * counters, nor are its publishers acknowledged); a refill that saw it covers its ids, so the
 * reply adds nothing twice.
 *
 * Bounded by rows and by budget bytes: it holds what arrives during a few forwarder turns at full
 * rate. Past that the sink is behind (or down), the table is growing, and reading it back from
 * SQLite is not what limits the gateway then.
 */
import type { Reading } from '../contract/reading.js';

export interface OutboxEntry {
  id: number;
  reading: Reading;
}

export interface TailStats {
  /** Rows held now. */
  rows: number;
  /** Their budget bytes. */
  bytes: number;
  /** True when the tail holds the whole table (reads past its end need no SQLite). */
  complete: boolean;
  /** Reads answered from memory / by SQLite. */
  hits: number;
  misses: number;
  /** Times the self-check (rows held = table depth while complete) failed and the tail was dropped. */
  resyncs: number;
}

/** True if any metric is -0: JSON (the table's format) stores it as 0. */
function hasNegativeZero(metrics: Record<string, number>): boolean {
  for (const k in metrics) if (Object.is(metrics[k], -0)) return true;
  return false;
}

const INITIAL_CAPACITY = 1024;

export class UnsentTail {
  readonly maxRows: number;
  readonly maxBytes: number;
  // A ring buffer of parallel arrays (no object per row while it waits): grown by doubling up to maxRows.
  private cap = 0;
  private ids = new Float64Array(0);
  private ts = new Float64Array(0);
  /** NaN: no seq. */
  private seq = new Float64Array(0);
  private arrived = new Float64Array(0);
  private rowBytes = new Float64Array(0);
  private machine: (string | undefined)[] = [];
  private metrics: (Record<string, number> | undefined)[] = [];
  private head = 0;
  private size = 0;
  private bytes = 0;
  /** Every table row with id <= covered is held here (see the invariant above). */
  private covered = 0;
  private complete: boolean;
  private closed = false;
  private hits = 0;
  private misses = 0;
  private resyncs = 0;

  /** `emptyTable`: the table holds no row now, so the (empty) tail is the whole of it. */
  constructor(maxRows: number, maxBytes: number, emptyTable: boolean) {
    this.maxRows = Math.max(1, Math.floor(maxRows));
    this.maxBytes = maxBytes;
    this.complete = emptyTable;
  }

  get rows(): number {
    return this.size;
  }

  stats(): TailStats {
    return { rows: this.size, bytes: this.bytes, complete: this.complete, hits: this.hits, misses: this.misses, resyncs: this.resyncs };
  }

  /**
   * A group commit of `count` rows with ids firstId.. (firstId -1: not consecutive) and `bytes`
   * budget bytes: true if the caller is to `push` its rows now, in id order.
   */
  beginGroup(firstId: number, count: number, bytes: number): boolean {
    if (!this.complete || count === 0) return false;
    const lastId = firstId + count - 1;
    if (firstId > 0 && lastId <= this.covered) return false; // a refill already read these rows
    if (firstId <= 0 || firstId <= this.covered || this.size + count > this.maxRows || this.bytes + bytes > this.maxBytes) {
      // Ids unknown or overlapping (neither happens: the worker reports them and a refill sees a
      // whole transaction or none of it), or over the caps: stop appending; the tail drains.
      this.complete = false;
      return false;
    }
    this.reserve(this.size + count);
    this.covered = lastId;
    return true;
  }

  /** One row of the group `beginGroup` accepted (ids ascending, consecutive from its firstId). */
  push(id: number, r: Reading, arrived: number, bytes: number, json: string): void {
    let metrics = r.metrics;
    // Served as the table would serve it: JSON turns -0 into 0 (one metric loop; a copy only then).
    if (hasNegativeZero(metrics)) metrics = (JSON.parse(json) as { m: Record<string, number> }).m;
    const i = (this.head + this.size) % this.cap;
    this.ids[i] = id;
    this.ts[i] = r.ts === 0 ? 0 : r.ts; // -0 as SQLite gives it back
    this.seq[i] = r.seq === undefined ? NaN : r.seq === 0 ? 0 : r.seq;
    this.arrived[i] = arrived;
    this.rowBytes[i] = bytes;
    this.machine[i] = r.machine;
    this.metrics[i] = metrics;
    this.size++;
    this.bytes += bytes;
  }

  /**
   * Rows were deleted from the table up to and including `id` (ack, drop-oldest), or are being
   * deleted (an ack whose DELETE is with the writer thread). Returns how many rows and budget bytes
   * it removed.
   */
  deleteUpTo(id: number): { rows: number; bytes: number } {
    // `covered` stays: it only ever names ids that were rows (a later commit's ids exceed them).
    const rows = this.size;
    const bytes = this.bytes;
    while (this.size > 0 && (this.ids[this.head] as number) <= id) this.popHead();
    return { rows: rows - this.size, bytes: bytes - this.bytes };
  }

  /** How many rows held here have an id <= `id`. */
  countUpTo(id: number): number {
    return this.indexAfter(id);
  }

  /**
   * True if every table row with id <= `id` is held here, so deleteUpTo(id) removes exactly the
   * table's rows. Only up to `covered`: beyond it may lie rows of a commit whose reply is not
   * handled yet (a caller can know their ids from SQLite), which the tail does not hold.
   */
  holdsUpTo(id: number): boolean {
    return !this.closed && id <= this.covered;
  }

  /** These ids were moved to quarantine (those still in the table). */
  remove(ids: readonly number[]): void {
    for (const id of ids) {
      const k = this.indexAfter(id - 1);
      if (k >= this.size) continue;
      const at = (this.head + k) % this.cap;
      if (this.ids[at] !== id) continue;
      this.bytes -= this.rowBytes[at] as number;
      // Close the gap: move the rows after it one place towards the head (quarantine is rare).
      for (let j = k; j < this.size - 1; j++) this.move((this.head + j + 1) % this.cap, (this.head + j) % this.cap);
      this.size--;
      this.clearSlot((this.head + this.size) % this.cap);
    }
  }

  /**
   * Up to `limit` rows with id > afterId, oldest first, or null when the tail cannot tell exactly
   * (the answer would run past `covered` while other rows may follow): the caller reads SQLite.
   */
  read(afterId: number, limit: number): OutboxEntry[] | null {
    if (this.closed || !Number.isInteger(limit) || limit < 0) return this.miss();
    const k = this.indexAfter(afterId);
    const avail = this.size - k;
    // Fewer rows here than asked: exact only if no table row lies beyond them.
    if (avail < limit && !this.complete) return this.miss();
    this.hits++;
    const n = Math.min(avail, limit);
    const out: OutboxEntry[] = new Array<OutboxEntry>(n);
    for (let j = 0; j < n; j++) {
      const i = (this.head + k + j) % this.cap;
      const reading: Reading = { machine: this.machine[i] as string, ts: this.ts[i] as number, metrics: this.metrics[i] as Record<string, number> };
      const s = this.seq[i] as number;
      if (!Number.isNaN(s)) reading.seq = s;
      out[j] = { id: this.ids[i] as number, reading };
    }
    return out;
  }

  /**
   * A SQLite read with afterId <= 0 returned fewer rows than asked: that is the whole table.
   * Hold it (if it fits) and the tail is complete again. Returns whether it was taken.
   */
  refill(rows: readonly { id: number; reading: Reading; arrived: number; bytes: number }[]): boolean {
    if (this.closed || this.complete) return false;
    let bytes = 0;
    for (const r of rows) bytes += r.bytes;
    if (rows.length > this.maxRows || bytes > this.maxBytes) return false;
    this.clearAll();
    this.reserve(rows.length);
    for (const r of rows) {
      const i = (this.head + this.size) % this.cap;
      this.ids[i] = r.id;
      this.ts[i] = r.reading.ts;
      this.seq[i] = r.reading.seq === undefined ? NaN : r.reading.seq;
      this.arrived[i] = r.arrived;
      this.rowBytes[i] = r.bytes;
      this.machine[i] = r.reading.machine;
      this.metrics[i] = r.reading.metrics;
      this.size++;
    }
    this.bytes = bytes;
    const last = rows[rows.length - 1];
    if (last && last.id > this.covered) this.covered = last.id;
    this.complete = true;
    return true;
  }

  /** Arrival time of the oldest row; undefined when the tail cannot tell (ask SQLite). */
  oldestArrival(): number | null | undefined {
    if (this.size > 0) return this.arrived[this.head] as number;
    return this.complete && !this.closed ? null : undefined;
  }

  /** Id of the oldest row; undefined when the tail cannot tell (ask SQLite). */
  oldestId(): number | null | undefined {
    if (this.size > 0) return this.ids[this.head] as number;
    return this.complete && !this.closed ? null : undefined;
  }

  /**
   * Self-check after each reply: while complete, the tail holds exactly the table's rows, so their
   * count is the worker's depth. If not (a bug), drop it and serve from SQLite until a refill.
   */
  check(depth: number): void {
    if (!this.complete || this.size === depth) return;
    this.resyncs++;
    this.clearAll();
    this.complete = false;
  }

  /** Closed or the writer failed: nothing is served from memory any more. */
  close(): void {
    this.clearAll();
    this.complete = false;
    this.closed = true;
  }

  private miss(): null {
    this.misses++;
    return null;
  }

  /** Index (0-based from the head) of the first row with id > afterId. */
  private indexAfter(afterId: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.ids[(this.head + mid) % this.cap] as number) <= afterId) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private popHead(): void {
    this.bytes -= this.rowBytes[this.head] as number;
    this.clearSlot(this.head);
    this.head = (this.head + 1) % this.cap;
    this.size--;
    if (this.size === 0) {
      this.head = 0;
      this.bytes = 0;
    }
  }

  private move(from: number, to: number): void {
    this.ids[to] = this.ids[from] as number;
    this.ts[to] = this.ts[from] as number;
    this.seq[to] = this.seq[from] as number;
    this.arrived[to] = this.arrived[from] as number;
    this.rowBytes[to] = this.rowBytes[from] as number;
    this.machine[to] = this.machine[from];
    this.metrics[to] = this.metrics[from];
  }

  /** Release the slot's references (the readings can be collected once acknowledged). */
  private clearSlot(i: number): void {
    this.machine[i] = undefined;
    this.metrics[i] = undefined;
  }

  private clearAll(): void {
    for (let j = 0; j < this.size; j++) this.clearSlot((this.head + j) % this.cap);
    this.head = 0;
    this.size = 0;
    this.bytes = 0;
  }

  /** Room for `rows` rows (<= maxRows): grow by doubling, keeping the order from the head. */
  private reserve(rows: number): void {
    if (rows <= this.cap) return;
    let cap = Math.max(this.cap, INITIAL_CAPACITY);
    while (cap < rows) cap *= 2;
    cap = Math.min(cap, this.maxRows);
    const grow = (old: Float64Array): Float64Array<ArrayBuffer> => {
      const a = new Float64Array(cap);
      for (let j = 0; j < this.size; j++) a[j] = old[(this.head + j) % this.cap] as number;
      return a;
    };
    const machine = new Array<string | undefined>(cap);
    const metrics = new Array<Record<string, number> | undefined>(cap);
    for (let j = 0; j < this.size; j++) {
      machine[j] = this.machine[(this.head + j) % this.cap];
      metrics[j] = this.metrics[(this.head + j) % this.cap];
    }
    this.ids = grow(this.ids);
    this.ts = grow(this.ts);
    this.seq = grow(this.seq);
    this.arrived = grow(this.arrived);
    this.rowBytes = grow(this.rowBytes);
    this.machine = machine;
    this.metrics = metrics;
    this.head = 0;
    this.cap = cap;
  }
}
