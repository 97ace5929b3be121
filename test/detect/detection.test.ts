import Database from 'better-sqlite3';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ConditionEvent, WindowScore } from '../../gateway/src/contract/detection.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { createDetection, detectionConfigSchema, type Detection } from '../../gateway/src/detect/index.js';
import { encodeModel, int64Init, intAttr, node, tensorInfo } from '../../models/src/onnx-builder.js';
import { rng } from '../../models/src/train.js';
import { SHORT_CFG } from './helpers.js';

const logger = pino({ level: 'silent' });
const T0 = Date.parse('2025-03-03T06:00:00Z');

const cfg = detectionConfigSchema.parse(SHORT_CFG);

/** A spindle: current follows speed; temperature steady. `fault` breaks the current-speed relation. */
function machineStream(seed: number, machine = 'cnc-1') {
  const r = rng(seed);
  let speed = 1500;
  let t = T0;
  return (seconds: number, mode: 'healthy' | 'relation' | 'flat' = 'healthy'): Reading[] => {
    const out: Reading[] = [];
    for (let i = 0; i < seconds; i++) {
      speed = mode === 'healthy' ? Math.min(2000, Math.max(1000, speed + 8 * r.normal())) : 1500 + r.normal();
      const current = 0.01 * speed + 0.05 * r.normal() + (mode === 'relation' ? 1.5 : 0);
      out.push({ machine, ts: t, metrics: { spindle_speed_rpm: speed, motor_current_a: current, bearing_temp_c: 40 + 0.1 * r.normal() } });
      t += 1000;
    }
    return out;
  };
}

async function start(dataDir: string, over: Partial<typeof cfg> = {}): Promise<{ det: Detection; scores: WindowScore[]; conds: ConditionEvent[]; registry: Registry }> {
  const registry = new Registry();
  const det = await createDetection({ ...cfg, ...over }, { dataDir, logger, registry, manualFlush: true });
  const scores: WindowScore[] = [];
  const conds: ConditionEvent[] = [];
  det.on('score', (s) => scores.push(s));
  det.on('condition', (e) => conds.push(e));
  return { det, scores, conds, registry };
}

/** 1 Hz readings of three independent channels; `on` shifts bearing_temp_c up by `shift`. */
function driftStream(seed: number, shift: number): (seconds: number, on: boolean) => Reading[] {
  const r = rng(seed);
  let t = T0;
  return (seconds, on) =>
    Array.from({ length: seconds }, () => {
      const rd = { machine: 'm', ts: t, metrics: { a: 10 + r.normal(), b: 5 + 0.5 * r.normal(), bearing_temp_c: 40 + 0.1 * r.normal() + (on ? shift : 0) } };
      t += 1000;
      return rd;
    });
}

/**
 * 81 min of driftStream as the baseline (80 min, so both averages can be calibrated, each at most an
 * eighth of it: fast 1 min, slow 10 min unless `drift` says otherwise), then 40 min with bearing_temp_c
 * shifted by `shiftSd` sd of a window mean.
 */
async function shiftedRun(dir: string, shiftSd: number, drift: Partial<typeof cfg.drift>): Promise<{ conds: ConditionEvent[]; info: ReturnType<Detection['baseline']> }> {
  const { det, conds } = await start(dir, {
    baseline: { ...cfg.baseline, durationMs: 80 * 60_000 },
    drift: { ...cfg.drift, timeConstantMs: 60_000, slowTimeConstantMs: 600_000, ...drift },
    policy: { ...cfg.policy, k: 6, n: 10 },
  });
  const gen = driftStream(12, shiftSd * (0.1 / Math.sqrt(10)));
  det.push(gen(81 * 60, false));
  await det.flush();
  det.push(gen(2400, true));
  await det.flush();
  const info = det.baseline('m');
  await det.close();
  return { conds, info };
}

describe('Detection facade', () => {
  it('learns a baseline, stays quiet on healthy data, opens on a broken relationship and clears with hysteresis', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-facade-'));
    const { det, scores, conds, registry } = await start(dir);
    const gen = machineStream(1);
    det.push(gen(300));
    await det.flush();
    const early = det.baseline('cnc-1');
    expect(early?.phase).toBe('learning');
    expect(early?.progress).toBeGreaterThan(0.2);
    expect(early?.progress).toBeLessThan(0.5);
    expect(scores.every((s) => s.phase === 'learning' && s.threshold === null)).toBe(true);
    det.push(gen(700));
    await det.flush();
    const b = det.baseline('cnc-1');
    expect(b?.phase).toBe('scoring');
    expect(b?.progress).toBe(1);
    expect(b?.threshold).toBeGreaterThan(0);
    expect(b?.metrics).toEqual(['bearing_temp_c', 'motor_current_a', 'spindle_speed_rpm']);
    // healthy: no condition
    det.push(gen(600));
    await det.flush();
    expect(conds).toHaveLength(0);
    const scored = scores.filter((s) => s.phase === 'scoring');
    expect(scored.length).toBeGreaterThan(100);
    // current 1.5 A high while speed is flat: each channel stays inside its baseline range
    det.push(gen(300, 'relation'));
    await det.flush();
    const open = conds.find((c) => c.active);
    expect(open?.kind).toBe('anomaly');
    expect(open?.contributors.some((c) => c.metric === 'motor_current_a')).toBe(true);
    expect(open?.message).toMatch(/above threshold/);
    expect(det.machines()[0]?.anomalyOpen).toBe(true);
    det.push(gen(300));
    await det.flush();
    const clear = conds.find((c) => !c.active);
    expect(clear).toBeDefined();
    expect(clear?.eventTs).toBeGreaterThan(open?.eventTs as number);
    // window scores are kept for the HTTP history
    const hist = det.anomalyHistory('cnc-1', T0, T0 + 10 * 3_600_000);
    expect(hist.length).toBe(scores.length);
    const info = det.modelInfo();
    expect(info.name).toBe('mahalanobis-v1');
    expect(info.inferenceRuns).toBeGreaterThan(0);
    const text = await registry.metrics();
    expect(text).toMatch(/smartops_detect_windows_total\{result="scored"\} \d+/);
    expect(text).toMatch(/smartops_detect_condition_events_total\{event="open"\} 1/);
    await det.close();
  });

  it('keeps baselines, learning progress and open conditions across a restart; reset re-learns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-restart-'));
    const gen = machineStream(2);
    const genB = machineStream(3, 'press-7');
    let s = await start(dir);
    s.det.push(gen(1000));
    s.det.push(genB(400));
    await s.det.flush();
    const before = s.det.baseline('cnc-1');
    const learningBefore = s.det.baseline('press-7');
    expect(before?.phase).toBe('scoring');
    expect(learningBefore?.phase).toBe('learning');
    await s.det.close();

    // Reopen the same SQLite file.
    s = await start(dir);
    expect(s.det.baseline('cnc-1')).toMatchObject({ phase: 'scoring', threshold: before?.threshold, features: before?.features });
    expect(s.det.baseline('press-7')).toMatchObject({ phase: 'learning', windows: learningBefore?.windows });
    s.det.push(gen(60));
    await s.det.flush();
    expect(s.scores.length).toBeGreaterThan(0);
    expect(s.scores.every((x) => x.phase === 'scoring')).toBe(true);
    // open a condition, restart, and the clear still arrives after the restart
    s.det.push(gen(200, 'relation'));
    await s.det.flush();
    expect(s.conds.some((c) => c.active)).toBe(true);
    await s.det.close();
    s = await start(dir);
    expect(s.det.machines().find((m) => m.machine === 'cnc-1')?.anomalyOpen).toBe(true);
    s.det.push(gen(400));
    await s.det.flush();
    expect(s.conds.some((c) => !c.active)).toBe(true);

    // reset: learning again, also after another restart
    const r = s.det.resetBaseline('cnc-1');
    expect(r).toMatchObject({ phase: 'learning', windows: 0, progress: 0 });
    await s.det.close();
    s = await start(dir);
    // Nothing stored for it any more: it is unknown until it sends again, then it learns.
    expect(s.det.baseline('cnc-1')).toBeUndefined();
    s.det.push(gen(60));
    await s.det.flush();
    expect(s.det.baseline('cnc-1')?.phase).toBe('learning');
    await s.det.close();
  });

  it('copes with metrics that appear and disappear, and counts late readings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-metrics-'));
    const { det, registry } = await start(dir);
    const gen = machineStream(4);
    det.push(gen(1000));
    await det.flush();
    const more = gen(120).map((rd, i) => {
      const metrics: Record<string, number> = { ...rd.metrics, coolant_flow_l_min: 20 };
      if (i % 2 === 0) delete metrics.bearing_temp_c;
      return { ...rd, metrics };
    });
    det.push(more);
    // 30 s behind the newest reading: beyond the 2 s lateness bound
    det.push([{ machine: 'cnc-1', ts: (more[more.length - 1]?.ts as number) - 30_000, metrics: { motor_current_a: 99 } }]);
    await det.flush();
    expect(det.baseline('cnc-1')?.unlearnedMetrics).toEqual(['coolant_flow_l_min']);
    expect(det.machines()[0]?.lateReadings).toBe(1);
    expect(await registry.metrics()).toMatch(/smartops_detect_readings_total\{result="late"\} 1/);
    await det.close();
  });

  it('sees a small sustained shift of one channel through the drift statistic, which the window score alone misses', async () => {
    // Three independent channels; after the baseline, bearing_temp_c sits `shift` higher (2 sd of a
    // 10-reading window mean): every window alone stays near its healthy score, the average does not.
    const run = async (driftOn: boolean) => {
      const { det, conds, scores } = await start(mkdtempSync(join(tmpdir(), 'detect-drift-')), { drift: { ...cfg.drift, enabled: driftOn }, policy: { ...cfg.policy, k: 6, n: 10 } });
      const gen = driftStream(11, 2 * (0.1 / Math.sqrt(10)));
      det.push(gen(1000, false));
      await det.flush();
      det.push(gen(1200, true));
      await det.flush();
      const info = det.baseline('m');
      await det.close();
      return { conds, scores, info };
    };
    const without = await run(false);
    expect(without.info?.phase).toBe('scoring');
    expect(without.conds.filter((c) => c.active)).toHaveLength(0);
    const withDrift = await run(true);
    const open = withDrift.conds.find((c) => c.active);
    expect(open).toBeDefined();
    const named = open?.contributors.find((c) => c.feature === 'drift');
    expect(named?.metric).toBe('bearing_temp_c');
    expect(named?.text).toMatch(/bearing_temp_c mean persistently higher than the other channels explain/);
    // healthy part of the same run: nothing opened before the shift started
    expect(open?.eventTs).toBeGreaterThan(T0 + 1000 * 1000);
  });

  it('sees a sustained shift too small for the fast average through the slow one, and names it with its span', async () => {
    // A shift of 1.5 sd of a window mean sits within the fast average's band (about 0.3 sd per window's
    // worth of noise at 1 min) and well outside the slow one's (about 0.1).
    const run = async (slowTimeConstantMs: number) => {
      const dir = mkdtempSync(join(tmpdir(), 'detect-slow-'));
      const out = await shiftedRun(dir, 1.5, { slowTimeConstantMs });
      // the slow average is stored with the machine's running statistics, so a restart continues it
      const db = new Database(join(dir, 'detection.sqlite'), { readonly: true });
      const row = db.prepare('SELECT body FROM monitors').get() as { body: string };
      db.close();
      const saved = JSON.parse(row.body) as { driftSlow: number[] | null };
      expect(saved.driftSlow === null).toBe(slowTimeConstantMs === 0);
      return out;
    };
    const fastOnly = await run(0);
    expect(fastOnly.info?.phase).toBe('scoring');
    expect(fastOnly.conds.filter((c) => c.active)).toHaveLength(0);
    const both = await run(600_000);
    const open = both.conds.find((c) => c.active);
    expect(open).toBeDefined();
    expect(open?.eventTs).toBeGreaterThan(T0 + 81 * 60_000);
    const named = open?.contributors.find((c) => c.feature === 'drift');
    expect(named?.metric).toBe('bearing_temp_c');
    expect(named?.text).toMatch(/persistently higher than the other channels explain \(.* over ~10 min,/);
  });

  it('holds the slow average to its own limit (drift.slowLimit)', async () => {
    // A shift half as large as above: the slow average stays under the fast one's limit (10) and crosses half of it.
    const run = async (slowLimit: number) => (await shiftedRun(mkdtempSync(join(tmpdir(), 'detect-slowlimit-')), 0.75, { slowLimit })).conds.filter((c) => c.active);
    expect(cfg.drift.limit).toBe(10);
    expect(cfg.drift.slowLimit).toBe(8);
    expect(await run(10)).toHaveLength(0);
    const opened = await run(5);
    expect(opened.length).toBeGreaterThan(0);
    const named = opened[0]?.contributors.find((c) => c.feature === 'drift');
    expect(named?.metric).toBe('bearing_temp_c');
    expect(named?.text).toMatch(/over ~10 min,/);
  });

  it('continues the drift statistic across a restart (stored with the machine), and a reset forgets it', async () => {
    const over = { policy: { ...cfg.policy, k: 6, n: 10 } };
    const dir = mkdtempSync(join(tmpdir(), 'detect-drift-restart-'));
    // 4 sd of a window mean: clearly carried by the drift, still small for any single window
    const gen = driftStream(11, 4 * (0.1 / Math.sqrt(10)));
    let s = await start(dir, over);
    s.det.push(gen(1000, false));
    await s.det.flush();
    s.det.push(gen(1200, true));
    await s.det.flush();
    const threshold = s.det.baseline('m')?.threshold as number;
    const last = s.scores[s.scores.length - 1] as WindowScore;
    expect(last.score).toBeGreaterThan(threshold); // the drift carries the score
    await s.det.close();
    // A copy of the store without the running statistics: what a restart gave before they were stored.
    const bare = mkdtempSync(join(tmpdir(), 'detect-drift-bare-'));
    copyFileSync(join(dir, 'detection.sqlite'), join(bare, 'detection.sqlite'));
    const db = new Database(join(bare, 'detection.sqlite'));
    expect(db.prepare('DELETE FROM monitors').run().changes).toBe(1);
    db.close();

    const more = gen(40, true);
    s = await start(dir, over);
    s.det.push(more);
    await s.det.flush();
    // Windows wholly after the restart (the one straddling it lost its first readings with the old process).
    const whole = (x: WindowScore) => x.phase === 'scoring' && x.windowStart >= (more[0] as Reading).ts;
    const after = s.scores.filter(whole);
    expect(after.length).toBeGreaterThan(2);
    // continues where it was: within a few percent of the last score before the restart, still above
    for (const x of after) {
      expect(x.score).toBeGreaterThan(threshold);
      expect(Math.abs(x.score - last.score) / last.score).toBeLessThan(0.1);
    }
    const fresh = await start(bare, over);
    fresh.det.push(more);
    await fresh.det.flush();
    const afterFresh = fresh.scores.filter(whole);
    expect(afterFresh.length).toBe(after.length);
    // Started from 0 the average is still small: only a window whose own score is high gets above.
    afterFresh.forEach((x, i) => expect(x.score).toBeLessThanOrEqual((after[i] as WindowScore).score));
    expect(afterFresh.filter((x) => x.score > threshold).length).toBeLessThan(after.length / 2);
    await fresh.det.close();

    // reset: the stored statistics go with the baseline
    s.det.resetBaseline('m');
    await s.det.close();
    const db2 = new Database(join(dir, 'detection.sqlite'), { readonly: true });
    expect((db2.prepare('SELECT COUNT(*) AS n FROM monitors').get() as { n: number }).n).toBe(0);
    db2.close();
  });

  it('sees single-sample spikes that recur through the recurrence statistic (k-of-n alone misses them), across a restart', async () => {
    // Three independent channels; after a 60 min baseline, motor_current_a gets one large single-sample
    // spike every 50 s: each spike makes 2 of the overlapping 10 s windows far out, never 3 of 5.
    const stream = (seed: number) => {
      const r = rng(seed);
      let t = T0;
      let i = 0;
      return (seconds: number, spikes: boolean): Reading[] =>
        Array.from({ length: seconds }, () => {
          const spike = spikes && i % 50 === 25 ? 8 : 0;
          i++;
          const rd = { machine: 'm', ts: t, metrics: { a: 10 + r.normal(), b: 5 + 0.5 * r.normal(), motor_current_a: 12 + 0.2 * r.normal() + spike } };
          t += 1000;
          return rd;
        });
    };
    const base = { baseline: { ...cfg.baseline, durationMs: 60 * 60_000, minWindows: 30 } };
    const run = async (on: boolean, dir = mkdtempSync(join(tmpdir(), 'detect-recur-')), over: Record<string, unknown> = base) => {
      const s = await start(dir, { ...over, recurrence: { ...cfg.recurrence, enabled: on } });
      const gen = stream(5);
      s.det.push(gen(3700, false));
      await s.det.flush();
      s.det.push(gen(900, true));
      await s.det.flush();
      return { ...s, gen, dir };
    };
    const without = await run(false);
    expect(without.det.baseline('m')?.phase).toBe('scoring');
    expect(without.scores.filter((x) => x.phase === 'scoring' && x.above).length).toBeGreaterThan(10); // the spikes show
    expect(without.conds.filter((c) => c.active)).toHaveLength(0); // but never k of n in a row
    await without.det.close();

    // An 8 min baseline caps the horizon at 1 min: 10 s slots, shorter than two windows, so one spike would
    // fill consecutive slots. The statistic stays off for that machine: no calibration stored, and nothing it
    // says (so short a baseline raises window-score conditions of its own; they are not the point here).
    const short = await run(true, undefined, { baseline: { ...cfg.baseline, durationMs: 8 * 60_000, minWindows: 30 } });
    expect(short.det.baseline('m')?.phase).toBe('scoring');
    expect(short.scores.filter((x) => x.phase === 'scoring' && x.above).length).toBeGreaterThan(10);
    expect(short.scores.flatMap((x) => x.contributors).filter((c) => c.feature === 'recurrence')).toHaveLength(0);
    await short.det.close();
    const sdb = new Database(join(short.dir, 'detection.sqlite'), { readonly: true });
    const stored = sdb.prepare('SELECT * FROM baselines').all() as Record<string, unknown>[];
    sdb.close();
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored[0])).not.toMatch(/allowed/);

    const withR = await run(true);
    const open = withR.conds.find((c) => c.active);
    expect(open).toBeDefined();
    const named = open?.contributors[0];
    expect(named?.feature).toBe('recurrence');
    expect(named?.metric).toBe('motor_current_a');
    expect(named?.text).toMatch(/^motor_current_a (fluctuation \(spikes or bursts\)|mean) far out in [56] of the last 6 1.25-minute periods \(baseline about 0\.\d+\)$/);
    const threshold = withR.det.baseline('m')?.threshold as number;
    const last = withR.scores[withR.scores.length - 1] as WindowScore;
    expect(last.score).toBeGreaterThan(threshold);
    // restart: the hit slots are stored with the machine, so the next windows are still carried by them
    await withR.det.close();
    const again = await start(withR.dir, { ...base });
    const more = withR.gen(20, true); // no spike in these 20 s
    again.det.push(more);
    await again.det.flush();
    const after = again.scores.filter((x) => x.phase === 'scoring' && x.windowStart >= (more[0] as Reading).ts);
    expect(after.length).toBeGreaterThan(0);
    for (const x of after) expect(x.score).toBeGreaterThan(threshold);
    await again.det.close();
  });

  it('runs a bring-your-own model (fixed feature order) built on the fly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-facade-'));
    const bytes = encodeModel({
      name: 'byo',
      inputs: [tensorInfo('z', ['N', 2])],
      outputs: [tensorInfo('score', ['N'])],
      initializers: [int64Init('ax', [1], [1])],
      nodes: [node('Mul', ['z', 'z'], ['sq']), node('ReduceMean', ['sq', 'ax'], ['score'], [intAttr('keepdims', 0)])],
    });
    writeFileSync(join(dir, 'byo.onnx'), bytes);
    const manifest = join(dir, 'byo.manifest.json');
    writeFileSync(
      manifest,
      JSON.stringify({
        name: 'byo',
        version: '7',
        file: 'byo.onnx',
        opset: 18,
        layout: 'fixed',
        featureOrder: ['motor_current_a:mean', 'spindle_speed_rpm:mean'],
        inputs: [{ name: 'z', dtype: 'float32', shape: ['N', 2] }],
        outputs: [{ name: 'score', dtype: 'float32', shape: ['N'] }],
      }),
    );
    const { det, scores } = await start(join(dir, 'data'), { model: { ...cfg.model, manifest } });
    const gen = machineStream(5);
    det.push(gen(1100));
    await det.flush();
    expect(det.modelInfo()).toMatchObject({ name: 'byo', version: '7' });
    expect(det.baseline('cnc-1')?.features).toEqual(['motor_current_a:mean', 'spindle_speed_rpm:mean']);
    const scored = scores.filter((x) => x.phase === 'scoring');
    expect(scored.length).toBeGreaterThan(0);
    expect(scored.every((x) => x.modelVersion === '7' && Number.isFinite(x.score))).toBe(true);
    await det.close();
  });
});
