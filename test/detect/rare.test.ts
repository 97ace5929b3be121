import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { ConditionEvent } from '../../gateway/src/contract/detection.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { createDetection, detectionConfigSchema } from '../../gateway/src/detect/index.js';
import { calibrateRare, episodeWindows, rareRatio } from '../../gateway/src/detect/rare.js';
import { rng } from '../../models/src/train.js';

const logger = pino({ level: 'silent' });

describe('rare baseline states, hand-computed', () => {
  it('episode windows: above-threshold windows inside a span of n holding k above', () => {
    // threshold 1, k 2 of n 3: indexes 2 and 3 form a run; 7 is alone; 10 and 12 share the span 10..12
    const s = [0, 0, 2, 2, 0, 0, 0, 2, 0, 0, 2, 0, 2, 0];
    expect(episodeWindows(s, 1, 2, 3)).toEqual([2, 3, 10, 12]);
    // NaN (a window without an out-of-sample score) is never above
    expect(episodeWindows([2, NaN, 2], 1, 2, 3)).toEqual([0, 2]);
    expect(episodeWindows(s, 1, 3, 3)).toEqual([]);
  });

  it('keeps the windows of a run with the distance to their nearest non-overlapping neighbour; an isolated run of two overlapping windows is left out', () => {
    const params = { center: [0, 0], scale: [1, 1] };
    // a slow trajectory (indexes 10..15, x0 = 3, 3.1, ..., 3.5) and, far away, a run of two windows (30, 31)
    const vectors: Float64Array[] = Array.from({ length: 40 }, () => Float64Array.from([0, 0]));
    const scores = new Array<number>(40).fill(0.5);
    for (let i = 10; i <= 15; i++) {
      vectors[i] = Float64Array.from([3 + 0.1 * (i - 10), 1]);
      scores[i] = 5;
    }
    vectors[30] = Float64Array.from([0, 8]);
    vectors[31] = Float64Array.from([0, 8.1]);
    scores[30] = 5;
    scores[31] = 5;
    const rare = calibrateRare(vectors, scores, 2, params, { zClip: 10, k: 2, n: 3, overlap: 2, max: 64 });
    expect(rare).toBeDefined();
    // 30 and 31 overlap (1 apart < overlap 2); their nearest non-overlapping exemplar is the trajectory,
    // another run: not kept
    expect(rare?.z).toHaveLength(6);
    expect(rare?.z[0]).toEqual([3, 1]);
    // nearest non-overlapping neighbour of index 10 is 12: (0.2^2 + 0) / 2 features; the radius is twice that distance
    expect(rare?.r2[0]).toBeCloseTo(4 * 0.02, 12);
    // a window between two exemplars of the trajectory is inside; the far run's direction is not
    expect(rareRatio(Float64Array.from([3.25, 1]), rare!, params, 10)).toBeLessThan(1);
    expect(rareRatio(Float64Array.from([0, 8.05]), rare!, params, 10)).toBeGreaterThan(1);
    // a window as far from the end of the trajectory as two steps of it is on the edge; further is outside
    expect(rareRatio(Float64Array.from([3.5 + 0.4, 1]), rare!, params, 10)).toBeCloseTo(1, 9);
    expect(rareRatio(Float64Array.from([3.5 + 0.5, 1]), rare!, params, 10)).toBeGreaterThan(1);
    // max: evenly spaced exemplars; nothing above the threshold: nothing kept; 0: off
    expect(calibrateRare(vectors, scores, 2, params, { zClip: 10, k: 2, n: 3, overlap: 2, max: 3 })?.z.length).toBeLessThanOrEqual(3);
    expect(calibrateRare(vectors, scores, 9, params, { zClip: 10, k: 2, n: 3, overlap: 2, max: 64 })).toBeUndefined();
    expect(calibrateRare(vectors, scores, 2, params, { zClip: 10, k: 2, n: 3, overlap: 2, max: 0 })).toBeUndefined();
  });
});

describe('rare baseline states through the detection facade', () => {
  const T0 = Date.parse('2025-03-03T06:00:00Z');
  const cfg = detectionConfigSchema.parse({
    windowMs: 10_000,
    hopMs: 5_000,
    latenessMs: 2_000,
    baseline: { durationMs: 15 * 60_000, minWindows: 30, maxModes: 1 },
    // A low quantile puts a short baseline's transient above its own threshold, as a weekly transient is
    // above the 0.995 quantile of a week.
    threshold: { quantile: 0.9 },
    policy: { k: 3, n: 5, clearWindows: 5 },
  });
  /** Current follows speed; `cold` = seconds into a start-up in which the bearing is still warming up. */
  function stream(seed: number) {
    const r = rng(seed);
    let t = T0;
    return (seconds: number, mode: 'healthy' | 'cold' | 'relation' = 'healthy'): Reading[] =>
      Array.from({ length: seconds }, (_, i) => {
        const speed = 1500 + 50 * r.normal();
        const current = 0.01 * speed + 0.05 * r.normal() + (mode === 'relation' ? 1.5 : 0);
        const temp = 40 + 0.1 * r.normal() - (mode === 'cold' ? 8 * Math.exp(-i / 60) : 0);
        const rd = { machine: 'pump', ts: t, metrics: { spindle_speed_rpm: speed, motor_current_a: current, bearing_temp_c: temp } };
        t += 1000;
        return rd;
      });
  }
  const run = async (rareStates: number) => {
    const det = await createDetection({ ...cfg, threshold: { ...cfg.threshold, rareStates } }, { dataDir: mkdtempSync(join(tmpdir(), 'detect-rare-')), logger, registry: new Registry(), manualFlush: true });
    const conds: ConditionEvent[] = [];
    det.on('condition', (e) => conds.push(e));
    const gen = stream(5);
    // baseline: one start-up transient in 15 min
    det.push(gen(360));
    det.push(gen(150, 'cold'));
    det.push(gen(450));
    await det.flush();
    const info = det.baseline('pump');
    const t1 = T0 + 960_000 + 300_000;
    det.push(gen(300));
    det.push(gen(150, 'cold')); // the same start-up again, t1 .. t1 + 150 s
    det.push(gen(300));
    const t2 = T0 + 960_000 + 750_000;
    det.push(gen(120, 'relation')); // a broken relationship, never seen
    det.push(gen(60));
    await det.flush();
    await det.close();
    const opened = conds.filter((c) => c.active);
    return { info, duringRepeat: opened.filter((c) => c.eventTs >= t1 && c.eventTs < t2), duringFault: opened.filter((c) => c.eventTs >= t2) };
  };

  it('a start-up transient held in the baseline does not alert when it comes again; a new fault still does', async () => {
    const withRare = await run(64);
    expect(withRare.info?.phase).toBe('scoring');
    expect(withRare.info?.rareStates).toBeGreaterThan(0);
    expect(withRare.duringRepeat).toHaveLength(0);
    expect(withRare.duringFault.length).toBeGreaterThan(0);
    // the same data without rare states: the repeat opens an alert (the mechanism is what keeps it quiet)
    const without = await run(0);
    expect(without.info?.rareStates).toBe(0);
    expect(without.duringRepeat.length).toBeGreaterThan(0);
    expect(without.duringFault.length).toBeGreaterThan(0);
  });
});
