/**
 * The outbox's in-memory unsent tail (gateway/src/outbox/tail.ts): whatever `read` serves from
 * memory is exactly what the table returns (`SELECT ... FROM outbox WHERE id > ? ORDER BY id LIMIT ?`
 * through a second SQLite connection): same ids, same readings, same order. Real SQLite files, the
 * real writer thread; a seeded random mix of appends, acks, drop-oldest drops, quarantines, reopens
 * and reads, plus the cases that are hard to reach at random. Acks made while a group commit is
 * with the writer thread do not wait for their DELETE: they are checked at once (no acknowledged
 * row served or counted again) and against SQLite after the reply (or after a close right away).
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { ErrorCodes } from '../../gateway/src/errors.js';
import { Outbox, type OutboxEntry, type OutboxOptions } from '../../gateway/src/outbox/outbox.js';
import { closeOutboxes, openOutbox as open, openedOutboxes as opened, tempDir } from '../reliability/helpers.js';

afterEach(closeOutboxes);

function reopen(box: Outbox, dir: string, o: Partial<OutboxOptions>): Outbox {
  box.close();
  opened.splice(opened.indexOf(box), 1);
  return open(dir, o);
}

/** The table itself, read and decoded as the outbox decodes it. */
function sql(dir: string, afterId: number, limit: number): { entries: OutboxEntry[]; oldest: { id: number; arrived: number } | undefined } {
  const db = new Database(join(dir, 'outbox.sqlite'), { readonly: true });
  try {
    const rows = db.prepare('SELECT id, machine, ts, data FROM outbox WHERE id > ? ORDER BY id LIMIT ?').all(afterId, limit) as { id: number; machine: string; ts: number; data: string }[];
    const entries = rows.map((r) => {
      const d = JSON.parse(r.data) as { m: Record<string, number>; s?: number };
      const reading: Reading = { machine: r.machine, ts: r.ts, metrics: d.m };
      if (d.s !== undefined) reading.seq = d.s;
      return { id: r.id, reading };
    });
    const oldest = db.prepare('SELECT id, arrived FROM outbox ORDER BY id LIMIT 1').get() as { id: number; arrived: number } | undefined;
    return { entries, oldest };
  } finally {
    db.close();
  }
}

/** Every field that reaches a sink, in order; -0 and 0 differ; an absent seq differs from any value. */
function canon(entries: OutboxEntry[]): unknown[] {
  return entries.map((e) => ({
    id: e.id,
    machine: e.reading.machine,
    ts: e.reading.ts,
    seq: 'seq' in e.reading ? e.reading.seq : 'absent',
    metrics: Object.entries(e.reading.metrics),
    keys: Object.keys(e.reading).sort(),
  }));
}

/** box.read(afterId, limit) and its neighbours agree with the table. */
function expectSame(box: Outbox, dir: string, afterId: number, limit: number): void {
  const ref = sql(dir, afterId, limit);
  expect(canon(box.read(afterId, limit))).toEqual(canon(ref.entries));
  const all = sql(dir, 0, -1);
  expect(box.oldestId()).toBe(all.oldest ? all.oldest.id : null);
  expect(box.stats().oldestArrival).toBe(all.oldest ? all.oldest.arrived : null);
  expect(box.stats().depth).toBe(all.entries.length);
}

let ts = 1_700_000_000_000;
function readings(machine: string, n: number, o: { seq?: boolean; negativeZero?: boolean } = {}): Reading[] {
  return Array.from({ length: n }, (_, i) => {
    const r: Reading = { machine, ts: ts++, metrics: { v: ts % 1000, w: o.negativeZero && i % 2 === 0 ? -0 : 0.1 + i, '7': i } };
    if (o.seq) r.seq = ts % 100000;
    if (i === 0) r.tsFromArrival = true; // not stored in the table: not served either
    return r;
  });
}

describe('outbox in-memory tail', () => {
  it('property (seeded): memory-served reads equal the SQLite read through appends, acks, drops, quarantines and reopens', async () => {
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), machine: fc.constantFrom('a', 'bb', 'ccc'), n: fc.integer({ min: 1, max: 30 }), parallel: fc.integer({ min: 1, max: 3 }), seq: fc.boolean(), negativeZero: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('ack' as const), n: fc.integer({ min: 1, max: 50 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('ackAt' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('quarantine' as const), at: fc.array(fc.nat(40), { maxLength: 3 }), missing: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), after: fc.double({ min: 0, max: 1.2, noNaN: true }), limit: fc.integer({ min: 0, max: 80 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
      {
        // Appends, and while their group commit is with the writer thread: acks of the head (the
        // second coalesces into the first), maybe a quarantine, then wait for the replies or close.
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('appendAck' as const),
          machine: fc.constantFrom('a', 'bb', 'ccc'),
          n: fc.integer({ min: 1, max: 30 }),
          parallel: fc.integer({ min: 1, max: 3 }),
          seq: fc.boolean(),
          negativeZero: fc.boolean(),
          acks: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
          quarantine: fc.boolean(),
          // reopen: close while the commit and the DELETEs are with the worker; reopenAfterCommit: once
          // the commit's reply came, the DELETEs' replies maybe not (a queued ack not posted yet).
          then: fc.constantFrom<'wait' | 'reopen' | 'reopenAfterCommit'>('wait', 'wait', 'reopen', 'reopenAfterCommit'),
        }),
      },
    );
    // How often each path was taken with rows in memory (asserted below: the test must reach them).
    const seen = { hits: 0, misses: 0, quarantinedInMemory: 0, dropped: 0, overflowed: 0, refilled: 0, asyncAcks: 0, coalesced: 0, droppedBeforeDelete: 0, closedAfterAsyncAck: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 30, size: 'max' }), fc.constantFrom<'reject' | 'drop-oldest'>('reject', 'drop-oldest'), fc.integer({ min: 8, max: 120 }), async (ops, policy, memoryRows) => {
        const dir = tempDir('ob-tail');
        // Small budget and tail: drop-oldest drops, the tail overflows, drains and refills.
        // Conservation: every reading committed is waiting, acknowledged, quarantined or counted as dropped.
        let dropped = 0;
        const o: Partial<OutboxOptions> = {
          maxBytes: 9000,
          fullPolicy: policy,
          fullWaitMs: 20,
          quarantineKeep: 1000,
          memoryRows,
          onDrop: (n) => {
            seen.dropped += n;
            dropped += n;
          },
        };
        let accepted = 0;
        let acked = 0;
        let quarantined = 0;
        let box = open(dir, o);
        const appendAll = (x: { machine: string; n: number; parallel: number; seq: boolean; negativeZero: boolean }): Promise<unknown> =>
          Promise.all(
            Array.from({ length: x.parallel }, () =>
              box.append(readings(x.machine, x.n, x)).then(
                () => (accepted += x.n),
                (e: { code?: string }) => {
                  // CLOSED: held for space when close() came (reopen right after the acks).
                  if (e.code !== ErrorCodes.OUTBOX_FULL && e.code !== ErrorCodes.OUTBOX_CLOSED) throw e as Error;
                },
              ),
            ),
          );
        /** The forwarder's steps for a batch read from the head: its write succeeded, ack it. */
        const deliver = (batch: OutboxEntry[]): void => {
          const last = batch[batch.length - 1] as OutboxEntry;
          box.beginFlight((batch[0] as OutboxEntry).id, last.id);
          box.endFlight(true);
          acked += batch.length;
          box.ack(last.id);
        };
        for (const x of ops) {
          const t0 = box.memoryStats();
          if (x.kind === 'append') {
            await appendAll(x);
          } else if (x.kind === 'ack') {
            const batch = box.read(0, x.n);
            if (batch.length > 0) deliver(batch);
          } else if (x.kind === 'ackAt') {
            const all = sql(dir, 0, -1).entries;
            const e = all[Math.floor(x.at * all.length)];
            if (e) {
              // An ack without a flight (nothing else is with the writer thread: it waits).
              acked += all.filter((r) => r.id <= e.id).length;
              box.ack(e.id);
            }
          } else if (x.kind === 'quarantine') {
            const all = sql(dir, 0, -1).entries;
            const ids = x.at.map((i) => all[i]?.id).filter((id): id is number => id !== undefined);
            if (x.missing) ids.push((all[all.length - 1]?.id ?? 0) + 1000);
            const moved = box.quarantine(ids, 'HTTP 400');
            quarantined += moved;
            if (moved > 0 && t0.rows > 0) seen.quarantinedInMemory++;
          } else if (x.kind === 'appendAck') {
            const a0 = box.ackStats();
            let failure: unknown;
            // 'settled' is emitted right after the group is posted: its reply cannot have been handled
            // yet (replies come as port messages, after this turn and its microtasks).
            let onSettled = (): void => undefined;
            const settled = new Promise<void>((resolve) => (onSettled = resolve));
            box.once('settled', () => {
              onSettled();
              try {
                for (const n of x.acks) {
                  const hits = box.memoryStats().hits;
                  const batch = box.read(0, n);
                  const fromMemory = box.memoryStats().hits > hits;
                  const last = batch[batch.length - 1];
                  if (!last) break;
                  const depth = box.stats().depth;
                  const async = box.ackStats().async;
                  deliver(batch);
                  // At once, before the writer thread ran the DELETE: gone for every read and figure.
                  expect(box.read(0, 100000).filter((e) => e.id <= last.id)).toEqual([]);
                  expect(box.oldestId() ?? Infinity).toBeGreaterThan(last.id);
                  if (fromMemory && box.ackStats().async > async) expect(box.stats().depth).toBe(depth - batch.length);
                }
                if (x.quarantine) {
                  const head = box.read(0, 1)[0];
                  if (head) quarantined += box.quarantine([head.id], 'HTTP 400');
                }
              } catch (e) {
                failure = e;
              }
            });
            const appended = appendAll(x);
            await Promise.race([settled, appended]);
            if (x.then === 'reopen') {
              // close() right after the acks: it waits for the commit and the DELETEs still with the worker.
              if (box.ackStats().async > a0.async) seen.closedAfterAsyncAck++;
              box = reopen(box, dir, o);
              await appended;
            } else if (x.then === 'reopenAfterCommit') {
              await appended;
              box = reopen(box, dir, o);
            } else {
              await appended;
              await box.whenAcked();
            }
            box.removeAllListeners('settled');
            if (failure) throw failure as Error;
            const a1 = x.then === 'wait' ? box.ackStats() : a0;
            if (a1.async > a0.async) seen.asyncAcks++;
            if (a1.coalesced > a0.coalesced) seen.coalesced++;
            if (a1.droppedFirst > a0.droppedFirst) seen.droppedBeforeDelete++;
          } else if (x.kind === 'read') {
            const all = sql(dir, 0, -1).entries;
            const last = all[all.length - 1]?.id ?? 0;
            expectSame(box, dir, Math.floor(x.after * last), x.limit);
          } else {
            box = reopen(box, dir, o);
          }
          // After every operation: the forwarder's read, a whole-table read and a read from the middle.
          expectSame(box, dir, 0, 10);
          expectSame(box, dir, 0, 100000);
          const all = sql(dir, 0, -1).entries;
          if (all.length > 2) expectSame(box, dir, (all[1] as OutboxEntry).id, 5);
          expect(accepted).toBe(all.length + acked + quarantined + dropped);
          const t = box.memoryStats();
          expect(t.resyncs).toBe(0);
          expect(t.rows).toBeLessThanOrEqual(memoryRows);
          if (t.hits > t0.hits) seen.hits++;
          if (t.misses > t0.misses) seen.misses++;
          if (x.kind === 'append' && t0.complete && !t.complete) seen.overflowed++;
          if (!t0.complete && t.complete && t.rows > 0) seen.refilled++;
        }
        box = reopen(box, dir, o);
      }),
      { seed: 7, numRuns: 12 },
    );
    for (const [path, n] of Object.entries(seen)) expect({ path, taken: n > 0 }).toEqual({ path, taken: true });
  });

  it('serves from memory while it holds the head, from SQLite after a restart until the whole table is read', async () => {
    const dir = tempDir('ob-tail-restart');
    let box = open(dir);
    await box.append(readings('m1', 30, { seq: true }));
    expectSame(box, dir, 0, 10);
    expect(box.memoryStats()).toMatchObject({ rows: 30, complete: true, misses: 0 });
    box = reopen(box, dir, {});
    // Rows from before the restart: the tail does not hold them.
    expect(box.memoryStats()).toMatchObject({ rows: 0, complete: false });
    expectSame(box, dir, 0, 10);
    expect(box.memoryStats().misses).toBe(1);
    await box.append(readings('m1', 5));
    expectSame(box, dir, 0, 100); // 35 < 100: the whole table, held from now on
    expect(box.memoryStats()).toMatchObject({ rows: 35, complete: true, misses: 2 });
    await box.append(readings('m1', 5));
    expectSame(box, dir, 0, 100);
    expect(box.memoryStats()).toMatchObject({ rows: 40, complete: true, misses: 2 });
  });

  it('over its cap it stops growing, serves the head it holds, then SQLite, and refills once the table fits', async () => {
    const dir = tempDir('ob-tail-cap');
    const box = open(dir, { memoryRows: 20 });
    await box.append(readings('m1', 15));
    await box.append(readings('m1', 10)); // 25 > 20: not added, the tail stays the first 15
    expect(box.memoryStats()).toMatchObject({ rows: 15, complete: false });
    const before = box.memoryStats().misses;
    expectSame(box, dir, 0, 10); // the head it holds: memory
    expect(box.memoryStats().misses).toBe(before);
    expectSame(box, dir, 0, 20); // runs past what it holds: SQLite
    expect(box.memoryStats().misses).toBe(before + 1);
    box.ack((box.read(0, 10)[9] as OutboxEntry).id);
    expect(box.memoryStats()).toMatchObject({ rows: 5, complete: false });
    expectSame(box, dir, 0, 100); // 15 rows: whole table, taken back
    expect(box.memoryStats()).toMatchObject({ rows: 15, complete: true });
    await box.append(readings('m1', 3));
    expectSame(box, dir, 0, 100);
    expect(box.memoryStats()).toMatchObject({ rows: 18, complete: true, resyncs: 0 });
  });

  it('a refill that read a commit whose reply was not handled yet does not add its rows twice', async () => {
    const dir = tempDir('ob-tail-race');
    let box = open(dir);
    await box.append(readings('m1', 4));
    box = reopen(box, dir, {}); // rows waiting: the tail starts incomplete
    const appended = box.append(readings('m1', 6));
    // The commit timer (1 ms) was armed first, so it has posted the group when this one fires;
    // the reply is handled only on a later turn of the event loop.
    await new Promise((r) => setTimeout(r, 1));
    const deadline = Date.now() + 5000;
    while (sql(dir, 0, -1).entries.length < 10 && Date.now() < deadline) {
      // wait (synchronously) for the writer thread's commit
    }
    expect(box.stats().depth).toBe(4); // its reply not handled yet
    expect(box.read(0, 100)).toHaveLength(10); // SQLite, whole table: refilled, including the 6
    await appended;
    expect(box.stats().depth).toBe(10);
    expect(box.memoryStats()).toMatchObject({ rows: 10, complete: true, resyncs: 0 });
    expectSame(box, dir, 0, 100);
  });

  it('held appends (reject policy) are not served until committed; a drop-oldest drop and a quarantine are not served after', async () => {
    const one = JSON.stringify({ m: { v: 1 } }).length + 'm1'.length + 48;
    const dir = tempDir('ob-tail-held');
    const box = open(dir, { maxBytes: one * 4, fullWaitMs: 2000 });
    const r4 = Array.from({ length: 4 }, (_, i) => ({ machine: 'm1', ts: 1_700_000_000_000 + i, metrics: { v: i } }));
    await box.append(r4);
    const held = box.append([{ machine: 'm1', ts: 1_700_000_000_010, metrics: { v: 9 } }]);
    await new Promise((r) => setTimeout(r, 30));
    expect(box.stats().held).toBe(1);
    expectSame(box, dir, 0, 100);
    expect(box.read(0, 100).map((e) => e.reading.metrics.v)).toEqual([0, 1, 2, 3]);
    box.ack((box.read(0, 1)[0] as OutboxEntry).id);
    await held;
    expect(box.read(0, 100).map((e) => e.reading.metrics.v)).toEqual([1, 2, 3, 9]);
    expectSame(box, dir, 0, 100);
    const ids = box.read(0, 100).map((e) => e.id);
    box.quarantine([ids[1] as number], 'x');
    expect(box.read(0, 100).map((e) => e.reading.metrics.v)).toEqual([1, 3, 9]);
    expectSame(box, dir, 0, 100);

    const dir2 = tempDir('ob-tail-drop');
    const drop = open(dir2, { maxBytes: one * 4, fullPolicy: 'drop-oldest' });
    await drop.append(r4);
    await drop.append([{ machine: 'm1', ts: 1_700_000_000_020, metrics: { v: 7 } }]);
    expect(drop.read(0, 100).map((e) => e.reading.metrics.v)).toEqual([1, 2, 3, 7]);
    expectSame(drop, dir2, 0, 100);
    expect(drop.memoryStats()).toMatchObject({ rows: 4, complete: true, misses: 0, resyncs: 0 });
  });

  it('after the writer thread fails, reads come from SQLite', async () => {
    const dir = tempDir('ob-tail-crash');
    const box = open(dir, { onFatal: () => undefined });
    await box.append(readings('m1', 3));
    box.crashWorkerForTest();
    await expect(box.append(readings('m1', 1))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_WORKER });
    const misses = box.memoryStats().misses;
    expectSame(box, dir, 0, 100);
    expect(box.memoryStats()).toMatchObject({ rows: 0, complete: false, misses: misses + 1 });
  });
  it('an ack made while a group commit is with the writer thread does not wait; close() right after it leaves the rows deleted on reopen', async () => {
    const dir = tempDir('ob-ack-close');
    let box = open(dir, { fsync: 'always' });
    await box.append(readings('m1', 50));
    const head = box.read(0, 50);
    const upTo = (head[49] as OutboxEntry).id;
    const seen: { async: number; depth: number; ids: number[] }[] = [];
    box.once('settled', () => {
      // The group of 20 is with the worker (its fsync ahead of any DELETE): the ack does not wait for it.
      box.ack((head[29] as OutboxEntry).id);
      box.ack(upTo); // coalesced into the first
      seen.push({ async: box.ackStats().async, depth: box.stats().depth, ids: box.read(0, 100).map((e) => e.id) });
      box.close();
    });
    const later = box.append(readings('m1', 20));
    await later; // close() stored the group before closing
    expect(seen).toEqual([{ async: 2, depth: 0, ids: [] }]);
    opened.splice(opened.indexOf(box), 1);
    box = open(dir);
    // Nothing acknowledged is replayed; the 20 stored after it are all there.
    const rest = box.read(0, 100);
    expect(rest).toHaveLength(20);
    expect(rest.every((e) => e.id > upTo)).toBe(true);
    expect(sql(dir, 0, -1).entries.map((e) => e.id)).toEqual(rest.map((e) => e.id));
    expectSame(box, dir, 0, 100);
  });

  it('with nothing else at the writer thread, an ack of a few rows waits for its DELETE, a large one does not', async () => {
    const dir = tempDir('ob-ack-idle');
    const box = open(dir);
    await box.append(readings('m1', 600));
    const rows = box.read(0, 600);
    box.ack((rows[99] as OutboxEntry).id); // 100 rows: waits, the table has them deleted already
    expect(box.ackStats()).toMatchObject({ sync: 1, async: 0 });
    expect(sql(dir, 0, -1).entries).toHaveLength(500);
    box.ack((rows[599] as OutboxEntry).id); // 500 rows: posted
    expect(box.ackStats()).toMatchObject({ sync: 1, async: 1 });
    expect(box.stats()).toMatchObject({ depth: 0, bytes: 0, oldestArrival: null });
    expect(box.read(0, 1000)).toEqual([]);
    await box.whenAcked();
    expectSame(box, dir, 0, 1000);
  });

  it('a posted DELETE that fails is retried: its rows stay gone for reads and figures, and the next ack reports the error', async () => {
    const dir = tempDir('ob-ack-fail');
    const box = open(dir);
    await box.append(readings('m1', 600));
    const rows = box.read(0, 600);
    // Fault injection: the table refuses deletes until the trigger is dropped.
    const db = new Database(join(dir, 'outbox.sqlite'));
    try {
      db.exec("CREATE TRIGGER refuse BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'delete refused (test)'); END");
      box.ack((rows[499] as OutboxEntry).id); // 500 rows: posted
      expect(box.ackStats()).toMatchObject({ async: 1, sync: 0 });
      await new Promise((r) => setTimeout(r, 300)); // its failed reply comes
      expect(sql(dir, 0, -1).entries).toHaveLength(600);
      expect(box.stats().depth).toBe(100);
      expect(box.read(0, 1000).map((e) => e.id)).toEqual(rows.slice(500).map((e) => e.id));
      // The next ack (50 rows, nothing else at the worker: it waits) fails too and says so; its rows stay.
      expect(() => box.ack((rows[549] as OutboxEntry).id)).toThrow(expect.objectContaining({ code: ErrorCodes.OUTBOX_WRITE }) as Error);
      expect(box.read(0, 1000)).toHaveLength(100);
      db.exec('DROP TRIGGER refuse');
    } finally {
      db.close();
    }
    await box.whenAcked(); // the retry deletes the 500
    expect(box.ackStats().retried).toBeGreaterThanOrEqual(1);
    expect(sql(dir, 0, -1).entries).toHaveLength(100);
    expectSame(box, dir, 0, 1000);
  });

  it('while an ack is with the writer thread, reads from SQLite (tail over its cap) skip the acknowledged rows; they are deleted once it replies', async () => {
    const dir = tempDir('ob-ack-sqlite');
    // A large group with an fsync: it takes a while in the worker, so the DELETE behind it has not run when we read.
    const box = open(dir, { memoryRows: 20, fsync: 'always' });
    await box.append(readings('m1', 15));
    await box.append(readings('m1', 10)); // over the cap: the tail holds the first 15 only
    expect(box.memoryStats()).toMatchObject({ rows: 15, complete: false });
    const last = (sql(dir, 0, -1).entries[24] as OutboxEntry).id;
    const checked: unknown[] = [];
    box.once('settled', () => {
      const batch = box.read(0, 10); // from memory
      const upTo = (batch[9] as OutboxEntry).id;
      box.ack(upTo);
      const misses = box.memoryStats().misses;
      // Runs past what the tail holds: SQLite, where the 10 are still (and maybe the new group).
      const all = box.read(0, 1000);
      checked.push(
        box.ackStats().async,
        box.memoryStats().misses - misses,
        all.filter((e) => e.id <= last).length,
        all.every((e) => e.id > upTo),
        box.stats().depth,
        (box.oldestId() ?? 0) > upTo,
      );
    });
    await box.append(readings('m1', 3000));
    await box.whenAcked();
    expect(checked).toEqual([1, 1, 15, true, 15, true]);
    expectSame(box, dir, 0, 5000);
    expect(box.stats().depth).toBe(3015);
  });

  it('an ack whose reply never came (writer thread failed) loses nothing: after a restart its rows are sent again', async () => {
    const dir = tempDir('ob-ack-crash');
    let box = open(dir, { onFatal: () => undefined });
    await box.append(readings('m1', 10));
    const head = box.read(0, 10);
    box.once('settled', () => {
      box.crashWorkerForTest(); // after the group: the worker stores it, then dies before the DELETE
      box.ack((head[9] as OutboxEntry).id);
    });
    const later = box.append(readings('m1', 5)).then(
      () => 'stored',
      (e: { code?: string }) => e.code,
    );
    expect(['stored', ErrorCodes.OUTBOX_WORKER]).toContain(await later);
    await box.whenAcked();
    expect(() => box.ack((head[9] as OutboxEntry).id)).toThrow(expect.objectContaining({ code: ErrorCodes.OUTBOX_WORKER }) as Error);
    box.close();
    opened.splice(opened.indexOf(box), 1);
    box = open(dir);
    // At-least-once: the 10 acknowledged rows whose DELETE never ran come back; the 5 were committed before the crash.
    expect(box.read(0, 100).map((e) => e.id)).toEqual(sql(dir, 0, -1).entries.map((e) => e.id));
    expect(box.read(0, 100).slice(0, 10).map((e) => e.id)).toEqual(head.map((e) => e.id));
    expect(box.stats().depth).toBe(15);
  });
});
