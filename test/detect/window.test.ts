import { describe, expect, it } from 'vitest';
import { MachineWindower, type ClosedWindow } from '../../gateway/src/detect/window.js';

const opts = { windowMs: 10_000, hopMs: 5_000, latenessMs: 3_000, minSamples: 1 };

function collect() {
  const out: ClosedWindow[] = [];
  return { out, emit: (w: ClosedWindow) => out.push(w) };
}

describe('MachineWindower (event time)', () => {
  it('assigns a reading to every overlapping window and closes windows when the watermark passes their end', () => {
    const w = new MachineWindower('m1', opts);
    const { out, emit } = collect();
    // t = 7 s belongs to [0,10) and [5,15).
    w.push(7_000, { a: 1 }, emit);
    w.push(12_000, { a: 3 }, emit); // watermark 9 s: nothing closes
    expect(out).toHaveLength(0);
    w.push(13_000, { a: 5 }, emit); // watermark 10 s: [0,10) closes
    expect(out.map((x) => [x.start, x.end, x.count])).toEqual([[0, 10_000, 1]]);
    expect(out[0]?.metrics.get('a')?.mean).toBe(1);
    w.push(18_000, { a: 7 }, emit); // watermark 15 s: [5,15) closes with 7, 12, 13
    expect(out[1]?.start).toBe(5_000);
    expect(out[1]?.count).toBe(3);
    expect(out[1]?.metrics.get('a')?.mean).toBe(3);
  });

  it('places out-of-order readings within the lateness bound in their window, identical to in-order', () => {
    const inOrder = new MachineWindower('m', opts);
    const shuffled = new MachineWindower('m', opts);
    const a = collect();
    const b = collect();
    const pts = [1_000, 2_000, 3_000, 4_000, 6_000, 7_000, 8_000, 9_000, 11_000, 14_000, 30_000];
    for (const t of pts) inOrder.push(t, { v: t / 1000, u: (t / 1000) ** 2 }, a.emit);
    // Swap neighbours: each reading at most 2 s late (< 3 s lateness).
    const order = [2_000, 1_000, 4_000, 3_000, 7_000, 6_000, 9_000, 8_000, 11_000, 14_000, 30_000];
    for (const t of order) expect(shuffled.push(t, { v: t / 1000, u: (t / 1000) ** 2 }, b.emit)).toBe('accepted');
    expect(shuffled.lateReadings).toBe(0);
    expect(b.out.map((w) => [w.start, w.count])).toEqual(a.out.map((w) => [w.start, w.count]));
    for (let i = 0; i < a.out.length; i++) {
      const fa = a.out[i]?.metrics.get('u');
      const fb = b.out[i]?.metrics.get('u');
      expect(fb?.mean).toBeCloseTo(fa?.mean as number, 9);
      expect(fb?.std).toBeCloseTo(fa?.std as number, 9);
      expect(fb?.slope).toBeCloseTo(fa?.slope as number, 9);
    }
  });

  it('counts readings beyond the lateness bound as late and leaves them out of every window', () => {
    const w = new MachineWindower('m', opts);
    const { out, emit } = collect();
    w.push(1_000, { a: 1 }, emit);
    w.push(20_000, { a: 1 }, emit); // watermark 17 s
    expect(w.push(16_000, { a: 100 }, emit)).toBe('late'); // 4 s behind the newest: beyond 3 s
    expect(w.push(17_500, { a: 2 }, emit)).toBe('accepted');
    expect(w.lateReadings).toBe(1);
    w.push(60_000, { a: 1 }, emit);
    const all = out.flatMap((x) => [...x.metrics.values()].map((f) => f.max));
    expect(Math.max(...all)).toBeLessThan(100);
  });

  it('handles metrics that appear and disappear, and records presence', () => {
    const w = new MachineWindower('m', { ...opts, hopMs: 10_000 });
    const { out, emit } = collect();
    w.push(1_000, { a: 1, b: 2 }, emit);
    w.push(2_000, { a: 1 }, emit);
    w.push(3_000, { a: 1, c: 5 }, emit);
    w.push(4_000, { a: 1 }, emit);
    w.push(30_000, { z: 1 }, emit);
    const first = out[0];
    expect(first?.count).toBe(4);
    expect(first?.metrics.get('a')?.presence).toBe(1);
    expect(first?.metrics.get('b')?.presence).toBe(0.25);
    expect(first?.metrics.get('c')?.mean).toBe(5);
    expect(first?.metrics.has('z')).toBe(false);
  });

  it('drops windows with too few readings as sparse and closes everything on closeAll', () => {
    const w = new MachineWindower('m', { ...opts, minSamples: 2 });
    const { out, emit } = collect();
    w.push(1_000, { a: 1 }, emit);
    w.push(2_000, { a: 1 }, emit);
    w.push(8_000, { a: 1 }, emit);
    w.closeAll(emit);
    // [0,10) has 3 readings; [-5,5) has 2; [5,15) has 1 -> sparse.
    expect(out.map((x) => x.start)).toEqual([-5_000, 0]);
    expect(w.sparseWindows).toBe(1);
    expect(w.openWindows).toBe(0);
    // A reading for an already closed window after closeAll is late.
    expect(w.push(3_000, { a: 1 }, emit)).toBe('late');
  });
});
