import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { medianInterval, windowScale } from '../../gateway/src/detect/cadence.js';
import { rng } from '../../models/src/train.js';
import { startDetection, T0 } from './helpers.js';

const IDLE_CLOSE_MS = 5_000;

const limits = { windowMs: 60_000, hopMs: 30_000, targetSamples: 6, maxWindowMs: 3_600_000, baselineMs: 7 * 86_400_000, minWindows: 60 };

describe('sampling cadence -> window scale (unit)', () => {
  it('takes the median interval of distinct event times, so repeated timestamps and one long gap do not skew it', () => {
    expect(medianInterval([0, 10_000, 20_000, 30_000])).toBe(10_000);
    // one message per metric at the same timestamp: distinct times count once
    expect(medianInterval([0, 0, 0, 30_000, 30_000, 60_000, 60_000])).toBe(30_000);
    // switched off for an hour in between
    expect(medianInterval([0, 30_000, 60_000, 3_660_000, 3_690_000, 3_720_000])).toBe(30_000);
    expect(medianInterval([0, 5_000, 5_000 + 7_000])).toBe(6_000);
    expect(medianInterval([42, 42])).toBeNull();
    expect(medianInterval([])).toBeNull();
  });

  it('picks the smallest whole multiple that holds targetSamples readings, within the caps', () => {
    expect(windowScale(1_000, limits)).toBe(1);
    expect(windowScale(10_000, limits)).toBe(1); // 6 readings in 60 s already
    expect(windowScale(10_400, limits)).toBe(1); // 5.8 readings: within the tolerance
    expect(windowScale(10_600, limits)).toBe(2);
    expect(windowScale(30_030, limits)).toBe(3); // "every 30 s" on a slightly slow clock
    expect(windowScale(15_000, limits)).toBe(2);
    expect(windowScale(30_000, limits)).toBe(3);
    expect(windowScale(60_000, limits)).toBe(6);
    // an hour at most
    expect(windowScale(3_600_000, limits)).toBe(60);
    // the baseline must still hold minWindows hops: 2 h / (60 x 30 s) = 4
    expect(windowScale(60_000, { ...limits, baselineMs: 2 * 3_600_000 })).toBe(4);
    expect(windowScale(null, limits)).toBe(1);
    expect(windowScale(60_000, { ...limits, targetSamples: 0 })).toBe(1);
  });
});

/** Three channels every `everyMs` (current follows speed); `relation` breaks current vs speed while both stay in range. */
function stream(seed: number, machine: string, everyMs: number, start = T0) {
  const r = rng(seed);
  let speed = 1500;
  let t = start;
  return (count: number, mode: 'healthy' | 'relation' = 'healthy'): Reading[] => {
    const out: Reading[] = [];
    for (let i = 0; i < count; i++) {
      // mean-reverting speed (a random walk would leave any 15 min baseline's range)
      speed = mode === 'healthy' ? 1500 + 0.9 * (speed - 1500) + 40 * r.normal() : 1500 + r.normal();
      const current = 0.01 * speed + 0.05 * r.normal() + (mode === 'relation' ? 1.5 : 0);
      out.push({ machine, ts: t, metrics: { spindle_speed_rpm: speed, motor_current_a: current, bearing_temp_c: 40 + 0.1 * r.normal() } });
      t += everyMs;
    }
    return out;
  };
}

const start = (dataDir: string, over: Record<string, unknown> = {}, now?: () => number) => startDetection(dataDir, { idleCloseMs: IDLE_CLOSE_MS, ...over }, now);

const dir = (name: string) => mkdtempSync(join(tmpdir(), `detect-cadence-${name}-`));
const metric = async (reg: Registry, re: RegExp) => Number((await reg.metrics()).match(re)?.[1] ?? 0);

describe('Detection: machines that report rarely', () => {
  it('gives a machine reporting every 5 s windows 3x longer, learns, and opens on a broken relationship', async () => {
    const { det, scores, conds, registry } = await start(dir('slow'));
    const gen = stream(1, 'slow', 5_000);
    det.push(gen(8));
    // the first readings are held until 8 intervals are known
    expect(det.baseline('slow')).toMatchObject({ phase: 'learning', windowMs: null, hopMs: null, samplingIntervalMs: null });
    det.push(gen(1));
    expect(det.baseline('slow')).toMatchObject({ windowMs: 30_000, hopMs: 15_000, samplingIntervalMs: 5_000 });
    det.push(gen(400)); // 33 min
    await det.flush();
    expect(det.baseline('slow')?.phase).toBe('scoring');
    const learning = scores.filter((s) => s.phase === 'learning');
    expect(learning.length).toBeGreaterThanOrEqual(30);
    expect(learning.every((s) => s.windowEnd - s.windowStart === 30_000 && s.windowStart % 15_000 === 0)).toBe(true);
    expect(await metric(registry, /smartops_detect_windows_total\{result="sparse"\} (\d+)/)).toBe(0);
    expect(det.baseline('slow')?.sparseWindows).toBe(0);
    // none of the held readings was lost: all 409 were windowed
    expect(await metric(registry, /smartops_detect_readings_total\{result="accepted"\} (\d+)/)).toBe(409);
    det.push(gen(120));
    await det.flush();
    expect(conds, JSON.stringify(conds.map((c) => [c.active, c.message]))).toHaveLength(0);
    det.push(gen(120, 'relation'));
    await det.flush();
    const open = conds.find((c) => c.active);
    expect(open?.kind).toBe('anomaly');
    expect(open?.contributors.some((c) => c.metric === 'motor_current_a')).toBe(true);
    await det.close();
  });

  it('without it (targetSamplesPerWindow 0) the same machine never gets a scorable window', async () => {
    const { det, scores, registry } = await start(dir('fixed'), { targetSamplesPerWindow: 0 });
    const gen = stream(1, 'slow', 5_000);
    det.push(gen(409));
    await det.flush();
    expect(det.baseline('slow')).toMatchObject({ phase: 'learning', windows: 0, progress: 0, windowMs: 10_000 });
    expect(det.baseline('slow')?.sparseWindows).toBeGreaterThan(400);
    expect(scores).toHaveLength(0);
    expect(await metric(registry, /smartops_detect_windows_total\{result="sparse"\} (\d+)/)).toBeGreaterThan(400);
    await det.close();
  });

  it('leaves a machine that reports often enough exactly as it was (same windows, same scores)', async () => {
    // b: no probe at all (neither longer windows nor report-by-exception completion), as before both existed
    const runs = await Promise.all([start(dir('same-a')), start(dir('same-b'), { targetSamplesPerWindow: 0, holdValues: false })]);
    for (const { det } of runs) {
      const gen = stream(7, 'fast', 1_000);
      // in pieces smaller than the probe, so the held readings are replayed between pushes
      for (let i = 0; i < 1500; i += 5) det.push(gen(5));
      det.push(gen(200, 'relation'));
      await det.flush();
    }
    const [a, b] = runs as [Awaited<ReturnType<typeof start>>, Awaited<ReturnType<typeof start>>];
    expect(a.det.baseline('fast')).toMatchObject({ phase: 'scoring', windowMs: 10_000, hopMs: 5_000, samplingIntervalMs: 1_000 });
    expect(a.scores.length).toBeGreaterThan(250);
    expect(a.scores).toEqual(b.scores);
    expect(a.conds).toEqual(b.conds);
    expect(a.conds.some((c) => c.active)).toBe(true);
    for (const r of runs) await r.det.close();
  });

  it('keeps the scale across a restart (learning and fitted), and a reset times the machine again', async () => {
    const d = dir('restart');
    let s = await start(d);
    const gen = stream(3, 'slow', 5_000);
    s.det.push(gen(120)); // 10 min: still learning
    await s.det.flush();
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'learning', windowMs: 30_000 });
    await s.det.close();
    s = await start(d);
    // learning resumed with the cadence it was timed at
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'learning', windowMs: 30_000, hopMs: 15_000, samplingIntervalMs: 5_000, reportByException: false });
    s.det.push(gen(300));
    await s.det.flush();
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'scoring', windowMs: 30_000 });
    expect(s.scores.every((x) => x.windowEnd - x.windowStart === 30_000)).toBe(true);
    await s.det.close();
    s = await start(d);
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'scoring', windowMs: 30_000, hopMs: 15_000 });
    // after maintenance the PLC reports every second: a reset learns at the configured windows again
    s.det.resetBaseline('slow');
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'learning', windowMs: null });
    const fast = stream(4, 'slow', 1_000, T0 + 86_400_000);
    s.det.push(fast(100));
    await s.det.flush();
    expect(s.det.baseline('slow')).toMatchObject({ phase: 'learning', windowMs: 10_000, samplingIntervalMs: 1_000 });
    expect(s.scores.filter((x) => x.windowStart >= T0 + 86_400_000).every((x) => x.windowEnd - x.windowStart === 10_000)).toBe(true);
    await s.det.close();
  });

  it('windows the held readings of a machine that goes quiet before its cadence is known', async () => {
    let now = 1_000_000;
    const { det, registry } = await start(dir('quiet'), {}, () => now);
    det.push(stream(5, 'brief', 5_000)(4));
    det.tick(now + 1_000);
    expect(det.baseline('brief')?.windowMs).toBeNull();
    now += IDLE_CLOSE_MS;
    det.tick(now);
    expect(det.baseline('brief')).toMatchObject({ windowMs: 30_000, samplingIntervalMs: 5_000 });
    expect(await metric(registry, /smartops_detect_readings_total\{result="accepted"\} (\d+)/)).toBe(4);
    await det.close();
  });

  it('refuses a target below minSamplesPerWindow, naming both keys', async () => {
    await expect(start(dir('bad'), { targetSamplesPerWindow: 2, minSamplesPerWindow: 3 })).rejects.toThrow(/detection\.targetSamplesPerWindow \(2\).*detection\.minSamplesPerWindow \(3\)/);
  });
});
