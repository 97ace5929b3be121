/**
 * The outbox's SQLite writer, in a worker thread: every write to the outbox database (group-commit
 * inserts with drop-oldest in the same transaction, acknowledged deletes, quarantine) runs here, so
 * the COMMIT's fsync no longer blocks the gateway's event loop. Requests are handled one at a time
 * in arrival order, so writes stay serialized exactly as they were on the main thread.
 *
 * After each reply it bumps a shared counter and wakes the main thread, which waits on it
 * (Atomics.wait) for the few calls it makes synchronously (quarantine, close, an ack when nothing
 * else is with this thread).
 */
import Database from 'better-sqlite3';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { CommitRequest, Counters, Reply, Request, WorkerInit } from './protocol.js';

const { port, signal, init } = workerData as { port: MessagePort; signal: SharedArrayBuffer; init: WorkerInit };
const sig = new Int32Array(signal);

// Dying: tell the main thread at once (it may be waiting on `sig` for a reply that will not come).
process.on('uncaughtException', (e) => {
  Atomics.store(sig, 1, 1);
  Atomics.notify(sig, 0);
  parentPort?.postMessage({ fatal: e.message });
  process.exit(1);
});

const db = new Database(init.file);
db.pragma('journal_mode = WAL');
db.pragma(`synchronous = ${init.fsync === 'always' ? 'FULL' : 'NORMAL'}`);
db.pragma(`journal_size_limit = ${init.journalSizeLimit}`);

const stmts = {
  deleteUpTo: db.prepare('DELETE FROM outbox WHERE id <= ?'),
  deleteId: db.prepare('DELETE FROM outbox WHERE id = ?'),
  oldestRows: db.prepare('SELECT id, bytes FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
  quarantine: db.prepare('INSERT OR REPLACE INTO quarantine (id, machine, ts, data, error, at) SELECT id, machine, ts, data, ?, ? FROM outbox WHERE id = ?'),
  trimQuarantine: db.prepare('DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine ORDER BY id LIMIT ?)'),
  sumUpTo: db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b, COALESCE(MAX(id), 0) AS x FROM outbox WHERE id <= ?'),
  bytesOf: db.prepare('SELECT bytes FROM outbox WHERE id = ?'),
};

/**
 * Multi-row INSERTs: a group of n rows is stored as chunks of 64, 32, ..., 1 rows (n's binary
 * digits), one statement step each instead of one per row: the per-statement cost (a call into
 * better-sqlite3, binding, starting the VDBE) was about 40 % of a row's insert, and the writer
 * thread's CPU per reading fell from ~4.2 to ~2.5 us with batch messages (bench/README "Threads").
 * 64 x 5 parameters stay far below SQLite's limit on host parameters (SQLITE_MAX_VARIABLE_NUMBER,
 * 32766 since 3.32).
 */
const CHUNK_BITS = 6;
const inserts: { stmt: Database.Statement; params: unknown[] }[] = [];
for (let b = 0; b <= CHUNK_BITS; b++) {
  const k = 1 << b;
  inserts.push({
    stmt: db.prepare(`INSERT INTO outbox (machine, ts, data, bytes, arrived) VALUES ${new Array<string>(k).fill('(?, ?, ?, ?, ?)').join(', ')}`),
    params: new Array<unknown>(5 * k),
  });
}

/**
 * Insert rows [from, from + k) of the request with the k-row statement (k a power of two <= 64);
 * returns the id of its first row. Within one INSERT statement AUTOINCREMENT gives each row the
 * largest rowid so far + 1 (sqlite.org/autoinc.html), so the k ids are consecutive and the last is
 * lastInsertRowid.
 */
function insertChunk(m: CommitRequest, from: number, bits: number): number {
  const { stmt, params } = inserts[bits] as { stmt: Database.Statement; params: unknown[] };
  const k = 1 << bits;
  for (let i = 0, j = 0; i < k; i++) {
    const r = from + i;
    params[j++] = m.machine[r];
    params[j++] = m.ts[r];
    params[j++] = m.data[r];
    params[j++] = m.bytes[r];
    params[j++] = m.now;
  }
  const info = stmt.run(params);
  if (info.changes !== k) throw new Error(`outbox insert stored ${info.changes} of ${k} rows`);
  return Number(info.lastInsertRowid) - k + 1;
}

const first = db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM outbox').get() as { n: number; b: number };
const counters: Counters = {
  depth: first.n,
  bytes: first.b,
  quarantined: (db.prepare('SELECT COUNT(*) AS n FROM quarantine').get() as { n: number }).n,
};

function reply(r: Reply, transfer?: ArrayBuffer[]): void {
  port.postMessage(r, transfer);
  Atomics.add(sig, 0, 1);
  Atomics.notify(sig, 0);
}

/** Delete the oldest rows until at least `needBytes` are freed. Runs inside the commit transaction. */
function dropOldest(needBytes: number): { ids: number[]; sizes: number[]; bytes: number } {
  let freed = 0;
  let after = 0;
  const ids: number[] = [];
  const sizes: number[] = [];
  while (freed < needBytes) {
    const rows = stmts.oldestRows.all(after, 500) as { id: number; bytes: number }[];
    if (rows.length === 0) break;
    for (const r of rows) {
      freed += r.bytes;
      ids.push(r.id);
      sizes.push(r.bytes);
      after = r.id;
      if (freed >= needBytes) break;
    }
  }
  if (ids.length > 0) stmts.deleteUpTo.run(after);
  return { ids, sizes, bytes: freed };
}

function handle(m: Request): void {
  switch (m.t) {
    case 'commit': {
      // drop-oldest: free what the group needs beyond the budget (the main thread splits groups so
      // that one never exceeds the budget by itself); the reject policy never gets here over budget.
      const overflow = init.fullPolicy === 'drop-oldest' ? Math.max(0, counters.bytes + m.groupBytes - init.maxBytes) : 0;
      const started = process.hrtime.bigint();
      let drop = { ids: [] as number[], sizes: [] as number[], bytes: 0 };
      // The ids the inserts got: one serialized transaction on the only writer gives consecutive
      // AUTOINCREMENT ids, but this is checked between chunks, not assumed (-1: not consecutive).
      let firstId = -1;
      db.transaction(() => {
        if (overflow > 0) drop = dropOldest(overflow);
        let next = -1;
        let i = 0;
        const n = m.machine.length;
        for (let bits = CHUNK_BITS; bits >= 0; bits--) {
          for (const k = 1 << bits; n - i >= k; i += k) {
            const id = insertChunk(m, i, bits);
            if (i === 0) firstId = id;
            else if (id !== next) firstId = -1;
            next = id + k;
          }
        }
      })();
      counters.depth += m.machine.length - drop.ids.length;
      counters.bytes += m.groupBytes - drop.bytes;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (drop.ids.length > 0) {
        const dropIds = Float64Array.from(drop.ids);
        const dropBytes = Float64Array.from(drop.sizes);
        reply({ t: 'committed', seq: m.seq, count: m.machine.length, firstId, seconds, dropRows: drop.ids.length, dropIds, dropBytes, ...counters }, [
          dropIds.buffer as ArrayBuffer,
          dropBytes.buffer as ArrayBuffer,
        ]);
      } else {
        reply({ t: 'committed', seq: m.seq, count: m.machine.length, firstId, seconds, dropRows: 0, ...counters });
      }
      return;
    }
    case 'ack': {
      const s = stmts.sumUpTo.get(m.upTo) as { n: number; b: number; x: number };
      if (s.n > 0) {
        // The delete needs no flush of its own: if a power cut
        // loses it, those readings are sent again and the sink keeps one copy (series + time).
        // The next group commit's flush makes it durable anyway.
        if (init.fsync === 'always') db.pragma('synchronous = NORMAL');
        try {
          stmts.deleteUpTo.run(m.upTo);
        } finally {
          if (init.fsync === 'always') db.pragma('synchronous = FULL');
        }
        counters.depth -= s.n;
        counters.bytes -= s.b;
      }
      reply({ t: 'acked', seq: m.seq, maxId: s.x, ...counters });
      return;
    }
    case 'quarantine': {
      let moved = 0;
      let freed = 0;
      let trimmed = 0;
      db.transaction(() => {
        for (const id of m.ids) {
          const row = stmts.bytesOf.get(id) as { bytes: number } | undefined;
          if (!row) continue;
          stmts.quarantine.run(m.error, m.now, id);
          stmts.deleteId.run(id);
          moved++;
          freed += row.bytes;
        }
        const over = counters.quarantined + moved - init.quarantineKeep;
        if (over > 0) trimmed = stmts.trimQuarantine.run(over).changes;
      })();
      counters.depth -= moved;
      counters.bytes -= freed;
      counters.quarantined += moved - trimmed;
      reply({ t: 'quarantined', seq: m.seq, moved, trimmed, ...counters });
      return;
    }
    case 'close': {
      try {
        db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // best effort: the WAL is replayed on next open anyway
      }
      db.close();
      reply({ t: 'closed', seq: m.seq });
      port.close();
      return;
    }
    case 'crash':
      return; // handled before the try below
  }
}

port.on('message', (m: Request) => {
  // Test hook, outside the try on purpose: an uncaught error ends the worker.
  if (m.t === 'crash') throw new Error('outbox worker crash requested (test hook)');
  try {
    handle(m);
  } catch (e) {
    // A failed transaction was rolled back: the counters above change only after a commit.
    reply({ t: 'failed', seq: m.seq, message: (e as Error).message, ...((e as { code?: string }).code ? { code: (e as { code: string }).code } : {}) });
  }
});
