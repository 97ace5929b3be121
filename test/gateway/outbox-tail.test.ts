/**
 * The outbox's in-memory unsent tail (gateway/src/outbox/tail.ts): whatever `read` serves from
 * memory is exactly what the table returns (`SELECT ... FROM outbox WHERE id > ? ORDER BY id LIMIT ?`
 * through a second SQLite connection): same ids, same readings, same order. Real SQLite files, the
 * real writer thread; a seeded random mix of appends, acks, drop-oldest drops, quarantines, reopens
 * and reads, plus the cases that are hard to reach at random.
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
    );
    // How often each path was taken with rows in memory (asserted below: the test must reach them).
    const seen = { hits: 0, misses: 0, quarantinedInMemory: 0, dropped: 0, overflowed: 0, refilled: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 30, size: 'max' }), fc.constantFrom<'reject' | 'drop-oldest'>('reject', 'drop-oldest'), fc.integer({ min: 8, max: 120 }), async (ops, policy, memoryRows) => {
        const dir = tempDir('ob-tail');
        // Small budget and tail: drop-oldest drops, the tail overflows, drains and refills.
        const o: Partial<OutboxOptions> = { maxBytes: 9000, fullPolicy: policy, fullWaitMs: 20, quarantineKeep: 1000, memoryRows, onDrop: (n) => (seen.dropped += n) };
        let box = open(dir, o);
        for (const x of ops) {
          const t0 = box.memoryStats();
          if (x.kind === 'append') {
            await Promise.all(
              Array.from({ length: x.parallel }, () =>
                box.append(readings(x.machine, x.n, x)).catch((e: { code?: string }) => {
                  if (e.code !== ErrorCodes.OUTBOX_FULL) throw e as Error;
                }),
              ),
            );
          } else if (x.kind === 'ack') {
            const batch = box.read(0, x.n);
            if (batch.length > 0) box.ack((batch[batch.length - 1] as OutboxEntry).id);
          } else if (x.kind === 'ackAt') {
            const all = sql(dir, 0, -1).entries;
            const e = all[Math.floor(x.at * all.length)];
            if (e) box.ack(e.id);
          } else if (x.kind === 'quarantine') {
            const all = sql(dir, 0, -1).entries;
            const ids = x.at.map((i) => all[i]?.id).filter((id): id is number => id !== undefined);
            if (x.missing) ids.push((all[all.length - 1]?.id ?? 0) + 1000);
            const moved = box.quarantine(ids, 'HTTP 400');
            if (moved > 0 && t0.rows > 0) seen.quarantinedInMemory++;
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
});
