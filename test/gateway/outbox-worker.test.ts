/**
 * The outbox's writer thread failing is not silent: the outbox refuses what it had not committed
 * (no acknowledgement for it) and everything after, with SMARTOPS_OUTBOX_WORKER, and reports it
 * once; what was committed before stays on disk.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { ErrorCodes, type GatewayError } from '../../gateway/src/errors.js';
import { Outbox } from '../../gateway/src/outbox/outbox.js';
import { removeTempDirs, tempDir } from '../reliability/helpers.js';

const opened: Outbox[] = [];
afterEach(() => {
  for (const o of opened.splice(0)) o.close();
  removeTempDirs();
});

function readings(from: number, n: number): Reading[] {
  return Array.from({ length: n }, (_, i) => ({ machine: 'm1', ts: 1_700_000_000_000 + from + i, metrics: { v: from + i } }));
}

describe('outbox writer thread', () => {
  it('a crash refuses the group it held and every later append, reports once, and keeps what was committed', async () => {
    const dir = tempDir('ob-crash');
    const fatal: GatewayError[] = [];
    const box = new Outbox({ dir, fsync: 'always', commitIntervalMs: 1, maxBytes: 1 << 20, fullPolicy: 'reject', fullWaitMs: 1000, onFatal: (e) => fatal.push(e) });
    opened.push(box);
    await box.append(readings(0, 10));
    box.crashWorkerForTest();
    // Handed to the worker after the crash request: never committed, so never resolved.
    await expect(box.append(readings(10, 5))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_WORKER });
    await expect(box.append(readings(15, 1))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_WORKER });
    expect(() => box.ack(1)).toThrow(expect.objectContaining({ code: ErrorCodes.OUTBOX_WORKER }) as Error);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.code).toBe(ErrorCodes.OUTBOX_WORKER);
    expect(box.pendingReadings()).toBe(0);
    box.close();
    opened.splice(0);
    const again = new Outbox({ dir, fsync: 'always', commitIntervalMs: 1, maxBytes: 1 << 20, fullPolicy: 'reject', fullWaitMs: 1000 });
    opened.push(again);
    expect(again.read(0, 100).map((e) => e.reading.metrics.v)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('close commits the appends still pending, then ends the thread', async () => {
    const dir = tempDir('ob-close');
    const box = new Outbox({ dir, fsync: 'always', commitIntervalMs: 1000, maxBytes: 1 << 20, fullPolicy: 'reject', fullWaitMs: 1000 });
    const done = Promise.all([box.append(readings(0, 3)), box.append(readings(3, 4))]);
    expect(box.pendingReadings()).toBe(7);
    box.close();
    await done;
    const again = new Outbox({ dir, fsync: 'always', commitIntervalMs: 1, maxBytes: 1 << 20, fullPolicy: 'reject', fullWaitMs: 1000 });
    opened.push(again);
    expect(again.stats().depth).toBe(7);
    await expect(box.append(readings(7, 1))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_CLOSED });
  });
});
