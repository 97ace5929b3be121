/**
 * The outbox on its own (real SQLite files in a temp dir): order under back-pressure, exact budget
 * and drop accounting, quarantine bounds, and state surviving a reopen. A model-based property
 * test (fast-check) checks the accounting invariants after every operation.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { ErrorCodes } from '../../gateway/src/errors.js';
import { Outbox, type DropReason, type OutboxOptions } from '../../gateway/src/outbox/outbox.js';
import { closeOutboxes, openOutbox as open, openedOutboxes as opened, tempDir } from './helpers.js';

afterEach(closeOutboxes);

/** Readings k = from..from+n-1 with seq = v = 1000 + k: every row of a machine has the same size. */
function readings(machine: string, from: number, n: number): Reading[] {
  return Array.from({ length: n }, (_, i) => ({ machine, ts: 1_700_000_000_000 + from + i, seq: 1000 + from + i, metrics: { v: 1000 + from + i } }));
}

/** The k of an entry (see readings()). */
const k = (e: { reading: Reading }): number => (e.reading.seq as number) - 1000;

/** What the table really holds, through a second connection (WAL allows a concurrent reader). */
function onDisk(dir: string): { n: number; b: number } {
  const db = new Database(join(dir, 'outbox.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
  } finally {
    db.close();
  }
}

/** Budget bytes of one reading of machine m1 (the outbox's own formula; all are the same size). */
const ONE = JSON.stringify({ m: { v: 1000 }, s: 1000 }).length + 'm1'.length + 48;

describe('outbox', () => {
  it('reject: an append held for space keeps every later append behind it (order per machine)', async () => {
    const dir = tempDir('ob-order');
    const box = open(dir, { maxBytes: ONE * 10 });
    await box.append(readings('m1', 0, 8));
    // In the same commit group: a big append that does not fit, then a small one that would.
    const big = box.append(readings('m1', 8, 5));
    const small = box.append(readings('m1', 13, 1));
    let smallDone = false;
    void small.then(() => (smallDone = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(smallDone).toBe(false);
    expect(box.stats().held).toBe(2);
    // The sink confirms the first 8: both fit now and are stored in arrival order.
    const first = box.read(0, 8);
    box.ack((first[first.length - 1] as { id: number }).id);
    await Promise.all([big, small]);
    expect(box.read(0, 100).map(k)).toEqual([8, 9, 10, 11, 12, 13]);
    expect(box.stats()).toMatchObject({ depth: 6, bytes: onDisk(dir).b, held: 0 });
  });

  it('reject: after fullWaitMs every held append is refused with SMARTOPS_OUTBOX_FULL; nothing is stored for them', async () => {
    const dir = tempDir('ob-full');
    const box = open(dir, { maxBytes: ONE * 4, fullWaitMs: 100 });
    await box.append(readings('m1', 0, 4));
    const results = await Promise.allSettled([box.append(readings('m1', 4, 1)), box.append(readings('m1', 5, 1))]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCodes.OUTBOX_FULL });
    }
    expect(box.stats()).toMatchObject({ depth: 4, held: 0 });
    // A message larger than the whole budget is refused at once.
    await expect(box.append(readings('m1', 6, 10))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_FULL });
  });

  it('drop-oldest: a drop of rows in a write that then succeeds is not counted; if it fails, it is', async () => {
    const dir = tempDir('ob-flight');
    const drops: number[] = [];
    const box = open(dir, { maxBytes: ONE * 10, fullPolicy: 'drop-oldest', onDrop: (n) => drops.push(n) });
    await box.append(readings('m1', 0, 10));
    let batch = box.read(0, 4);
    box.beginFlight((batch[0] as { id: number }).id, (batch[3] as { id: number }).id);
    await box.append(readings('m1', 10, 6)); // deletes seq 0..5: 0..3 in flight, 4..5 not
    expect(drops).toEqual([2]);
    box.endFlight(true); // the write of 0..3 succeeded: they arrived, not dropped
    expect(drops).toEqual([2]);
    batch = box.read(0, 4);
    expect(batch.map(k)).toEqual([6, 7, 8, 9]);
    box.beginFlight((batch[0] as { id: number }).id, (batch[3] as { id: number }).id);
    await box.append(readings('m1', 16, 2)); // deletes 6, 7 (in flight)
    box.endFlight(false); // that write failed: 6 and 7 are lost, counted now
    expect(drops).toEqual([2, 2]);
    expect(box.oldestId()).toBe((batch[2] as { id: number }).id);
  });

  it('quarantine is bounded by quarantineKeep; the overflow is counted as dropped', async () => {
    const dir = tempDir('ob-quar');
    const drops: [number, DropReason][] = [];
    const box = open(dir, { quarantineKeep: 3, onDrop: (n, r) => drops.push([n, r]) });
    await box.append(readings('m1', 0, 5));
    const ids = box.read(0, 5).map((e) => e.id);
    expect(box.quarantine(ids, 'HTTP 400: bad')).toBe(5);
    expect(box.stats()).toMatchObject({ depth: 0, bytes: 0, quarantined: 3 });
    expect(box.listQuarantine(10).map((q) => q.metrics.v)).toEqual([1004, 1003, 1002]);
    expect(drops).toEqual([[2, 'quarantine_overflow']]);
    expect(box.quarantine(ids, 'again')).toBe(0);
  });

  it('state survives close and reopen (depth, bytes, quarantine, id order)', async () => {
    const dir = tempDir('ob-reopen');
    const a = open(dir);
    await a.append(readings('m1', 0, 20));
    a.quarantine([(a.read(0, 1)[0] as { id: number }).id], 'x');
    const before = a.stats();
    a.close();
    opened.splice(opened.indexOf(a), 1);
    const b = open(dir);
    expect(b.stats()).toMatchObject({ depth: before.depth, bytes: before.bytes, quarantined: 1 });
    await b.append(readings('m1', 20, 1));
    expect(b.read(0, 100).map(k)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('property: accounting is exact and order is kept under any mix of appends, acks, quarantines, drops and reopens', async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('append' as const), machine: fc.constantFrom('a', 'bb', 'ccc'), n: fc.integer({ min: 1, max: 40 }), parallel: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('ack' as const), n: fc.integer({ min: 1, max: 60 }) }),
      fc.record({ kind: fc.constant('quarantine' as const), at: fc.nat(30) }),
      fc.record({ kind: fc.constant('reopen' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), fc.constantFrom<'reject' | 'drop-oldest'>('reject', 'drop-oldest'), async (ops, policy) => {
        const dir = tempDir('ob-prop');
        const maxBytes = 6000;
        let dropped = 0;
        const o: Partial<OutboxOptions> = { maxBytes, fullPolicy: policy, fullWaitMs: 20, quarantineKeep: 1000, onDrop: (n) => (dropped += n) };
        let box = open(dir, o);
        const next: Record<string, number> = { a: 0, bb: 0, ccc: 0 };
        let accepted = 0;
        let acked = 0;
        let quarantined = 0;
        for (const x of ops) {
          if (x.kind === 'append') {
            const jobs = Array.from({ length: x.parallel }, () => {
              const rs = readings(x.machine, next[x.machine] as number, x.n);
              next[x.machine] = (next[x.machine] as number) + x.n;
              return box.append(rs).then(
                () => (accepted += rs.length),
                (e: { code?: string }) => {
                  if (e.code !== ErrorCodes.OUTBOX_FULL) throw e as Error;
                },
              );
            });
            await Promise.all(jobs);
          } else if (x.kind === 'ack') {
            const batch = box.read(0, x.n);
            if (batch.length > 0) {
              box.ack((batch[batch.length - 1] as { id: number }).id);
              acked += batch.length;
            }
          } else if (x.kind === 'quarantine') {
            const e = box.read(0, x.at + 1)[x.at];
            if (e) quarantined += box.quarantine([e.id], 'HTTP 400');
          } else {
            box.close();
            opened.splice(opened.indexOf(box), 1);
            box = open(dir, o);
          }
          const s = box.stats();
          const disk = onDisk(dir);
          expect(s.depth).toBe(disk.n);
          expect(s.bytes).toBe(disk.b);
          expect(s.bytes).toBeLessThanOrEqual(maxBytes);
          expect(s.held).toBe(0);
          // Conservation: every accepted reading is waiting, confirmed, quarantined or counted as dropped.
          expect(accepted).toBe(s.depth + acked + quarantined + dropped);
          if (policy === 'reject') expect(dropped).toBe(0);
          // Order: within a machine, what waits is in publishing order.
          const waiting = box.read(0, 100000);
          for (const m of ['a', 'bb', 'ccc']) {
            const seqs = waiting.filter((e) => e.reading.machine === m).map((e) => e.reading.seq as number);
            expect(seqs).toEqual([...seqs].sort((p, q) => p - q));
          }
        }
        box.close();
        opened.splice(opened.indexOf(box), 1);
      }),
      { numRuns: 40 },
    );
  });
});
