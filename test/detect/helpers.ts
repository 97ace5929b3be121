/** Shared setup of the detection facade tests: a short-baseline config and a started detection. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConditionEvent, WindowScore } from '../../gateway/src/contract/detection.js';
import { createDetection, detectionConfigSchema, type Detection } from '../../gateway/src/detect/index.js';

/** 10 s windows every 5 s, a 15 min baseline of at least 30 windows, 3-of-5 k-of-n: minutes of 1 Hz data, not a week. */
export const SHORT_CFG = {
  windowMs: 10_000,
  hopMs: 5_000,
  latenessMs: 2_000,
  baseline: { durationMs: 15 * 60_000, minWindows: 30 },
  policy: { k: 3, n: 5, clearWindows: 5 },
};

export const T0 = Date.parse('2025-03-03T06:00:00Z');

export interface Started {
  det: Detection;
  scores: WindowScore[];
  conds: ConditionEvent[];
  registry: Registry;
}

/** Start detection on SHORT_CFG with `over` merged on top (baseline merged one level down), manual flush. */
export async function startDetection(dataDir: string | null, over: Record<string, unknown> = {}, now?: () => number): Promise<Started> {
  const registry = new Registry();
  const baseline = { ...SHORT_CFG.baseline, ...((over.baseline as Record<string, unknown> | undefined) ?? {}) };
  const config = detectionConfigSchema.parse({ ...SHORT_CFG, ...over, baseline });
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'detect-test-'));
  const det = await createDetection(config, { dataDir: dir, logger: pino({ level: 'silent' }), registry, manualFlush: true, ...(now ? { now } : {}) });
  const scores: WindowScore[] = [];
  const conds: ConditionEvent[] = [];
  det.on('score', (s) => scores.push(s));
  det.on('condition', (e) => conds.push(e));
  return { det, scores, conds, registry };
}
