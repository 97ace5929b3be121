/**
 * `npm run train`: writes models/mahalanobis-v1.onnx and its manifest, deterministically, then checks
 * onnxruntime's output against the float64 TypeScript reference on a seeded synthetic fleet.
 *
 * The ONNX graph has no weights of its own: a machine's model is its baseline (fitted on site by
 * gateway/src/detect/baseline.ts) and enters the graph as inputs. "Training" here is therefore: build
 * the graph, fit baselines on synthetic machines with the production fitting code, and prove the
 * exported graph computes what the reference computes (max relative error printed, must be < 1e-4).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { fitParams, referenceScore, selectFeatureKeys, vectorize, type FeatureRow, type ModelParams } from '../../gateway/src/detect/baseline.js';
import { detectionConfigSchema } from '../../gateway/src/detect/config.js';
import { MetricAccumulator } from '../../gateway/src/detect/features.js';
import type { ModelManifest } from '../../gateway/src/detect/model.js';
import { BUILTIN_NAME, buildScorerModel } from './graph.js';
import { OPSET } from './onnx-builder.js';

export const MODEL_VERSION = '1.1.0';
export const Z_CLIP = 10;
export const SEED = 20240601;

/** Small deterministic PRNG (mulberry32) + Box-Muller; enough for synthetic check data. */
export function rng(seed: number): { next: () => number; normal: () => number } {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => {
    const u = Math.max(next(), 1e-12);
    const v = next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  return { next, normal };
}

/**
 * Synthetic machine: `metrics` channels driven by a shared load (so channels are correlated), with an
 * idle mode 20% of the time, sampled at 1 Hz into 60 s windows. Returns window feature rows.
 */
export function syntheticRows(seed: number, metrics: number, windows: number, opts: { breakRelation?: boolean; noiseSeed?: number } = {}): FeatureRow[] {
  // Machine parameters from `seed`, operation and noise from `noiseSeed`: same machine, another day.
  const pr = rng(seed);
  const gains = Array.from({ length: metrics }, () => 0.5 + pr.next());
  const offsets = Array.from({ length: metrics }, () => 10 * pr.next());
  const r = rng(opts.noiseSeed ?? seed + 1);
  const rows: FeatureRow[] = [];
  let load = 0.7;
  for (let w = 0; w < windows; w++) {
    const idle = r.next() < 0.2;
    const accs = Array.from({ length: metrics }, () => new MetricAccumulator());
    for (let s = 0; s < 60; s++) {
      load = Math.min(1, Math.max(0.3, load + 0.01 * r.normal()));
      const l = idle ? 0 : load;
      for (let m = 0; m < metrics; m++) {
        let v = offsets[m] as number + (gains[m] as number) * l * 10 + 0.2 * r.normal();
        if (opts.breakRelation && m === 0) v += 0.8; // channel 0 up while the others stay put
        (accs[m] as MetricAccumulator).add(s, v);
      }
    }
    const row: FeatureRow = new Map();
    accs.forEach((a, m) => row.set(`ch${m}`, a.values(60)));
    rows.push(row);
  }
  return rows;
}

export function manifestFor(file: string, sha256: string, check: { cases: number; maxRelErr: number; maxResidErr: number }): ModelManifest {
  const d = detectionConfigSchema.parse({});
  return {
    name: BUILTIN_NAME,
    version: MODEL_VERSION,
    file,
    opset: OPSET,
    description:
      'Per-machine baseline model: minimum over the machine\'s operating modes of a regularised (Ledoit-Wolf) Mahalanobis distance of its standardised window features, divided by the feature count (a healthy window scores about 1). One generic graph; each machine\'s fitted baseline is fed as inputs, so all machines are scored in one batched run. Also outputs each feature\'s conditional residual given the others (resid, in conditional sd), which the gateway averages over windows to see sustained drifts.',
    layout: 'per-machine',
    featureSet: d.baseline.features,
    inputs: [
      { name: 'x', dtype: 'float32', shape: ['N', 'F'] },
      { name: 'mask', dtype: 'float32', shape: ['N', 'F'] },
      { name: 'center', dtype: 'float32', shape: ['N', 'M', 'F'] },
      { name: 'scale', dtype: 'float32', shape: ['N', 'M', 'F'] },
      { name: 'precision', dtype: 'float32', shape: ['N', 'M', 'F', 'F'] },
    ],
    outputs: [
      { name: 'score', dtype: 'float32', shape: ['N'] },
      { name: 'contrib', dtype: 'float32', shape: ['N', 'F'] },
      { name: 'mode', dtype: 'float32', shape: ['N'] },
      { name: 'resid', dtype: 'float32', shape: ['N', 'F'] },
    ],
    params: { zClip: Z_CLIP },
    threshold: {
      rule: 'per machine: threshold = max(minThreshold, quantile(out-of-sample baseline scores, q) x margin); anomaly opens when k of the last n windows are above it, clears after clearWindows windows below threshold x clearRatio',
      defaults: { q: d.threshold.quantile, margin: d.threshold.margin, minThreshold: d.threshold.minThreshold, folds: d.threshold.folds, k: d.policy.k, n: d.policy.n, clearRatio: d.policy.clearRatio, clearWindows: d.policy.clearWindows },
      outOfSample: 'baseline windows in blocks of 2 x windowMs/hopMs windows, dealt round-robin to `folds` folds; each fold scored by a baseline fitted on the other folds',
      drift:
        'per machine and feature, EWMA (time constant drift.timeConstantMs, at most baseline.durationMs / 8) of the output resid clipped to +-drift.clip; sigma = RMS of that EWMA over the out-of-sample baseline residuals in time order, floored at sqrt(lambda/(2-lambda)) x sqrt(windowMs/hopMs) x RMS(clipped resid); drift = max |EWMA| / sigma; reported score = max(score, threshold x drift / drift.limit)',
      driftDefaults: { timeConstantMs: d.drift.timeConstantMs, limit: d.drift.limit, clip: d.drift.clip },
    },
    training: {
      script: 'models/src/train.ts (npm run train)',
      data: 'none: the graph has no learnt weights. Each machine\'s parameters are fitted on site from its own baseline windows (gateway/src/detect/baseline.ts). The reference check uses a seeded synthetic fleet (syntheticRows in train.ts).',
      seed: SEED,
      sha256,
    },
    reference: { cases: check.cases, maxRelErr: check.maxRelErr, maxResidAbsErr: check.maxResidErr, tolerance: 1e-4, residTolerance: 1e-3 },
  };
}

/** Score synthetic machines with onnxruntime and with the reference; returns the worst relative error. */
export async function referenceCheck(modelBytes: Uint8Array, seed: number): Promise<{ cases: number; maxRelErr: number; maxResidErr: number }> {
  const session = await ort.InferenceSession.create(modelBytes);
  const cfg = detectionConfigSchema.parse({});
  const fitOpts = { minShrinkage: cfg.baseline.minShrinkage, scaleFloorRel: cfg.baseline.scaleFloorRel, scaleFloorAbs: 1e-9, maxModes: cfg.baseline.maxModes, minModeWindows: cfg.baseline.minModeWindows };
  const machines: Array<{ params: ModelParams; xs: Float64Array[] }> = [];
  for (let i = 0; i < 6; i++) {
    const metrics = 2 + i; // different F per machine: exercises padding
    const base = syntheticRows(seed + i, metrics, 200);
    const keys = selectFeatureKeys(base, cfg.baseline.features);
    const params = fitParams(base.map((r) => vectorize(r, keys)), keys, fitOpts);
    const test = [...syntheticRows(seed + i, metrics, 20, { noiseSeed: seed + 100 + i }), ...syntheticRows(seed + i, metrics, 20, { noiseSeed: seed + 200 + i, breakRelation: true })];
    machines.push({ params, xs: test.map((r) => vectorize(r, keys)) });
  }
  // Pack the batch independently of ScoringModel (a second implementation of the padding rules).
  const rows = machines.flatMap((m) => m.xs.map((x) => ({ x, params: m.params })));
  rows.forEach((r, i) => {
    if (i % 7 === 0) r.x[i % r.x.length] = NaN; // some windows lack a metric
  });
  const f = Math.max(...rows.map((r) => r.params.featureKeys.length));
  const mm = Math.max(...rows.map((r) => r.params.modes.length));
  const n = rows.length;
  const x = new Float32Array(n * f);
  const mask = new Float32Array(n * f);
  const center = new Float32Array(n * mm * f);
  const scale = new Float32Array(n * mm * f).fill(1);
  const precision = new Float32Array(n * mm * f * f);
  rows.forEach((r, i) => {
    const fr = r.params.featureKeys.length;
    for (let j = 0; j < fr; j++) {
      const missing = Number.isNaN(r.x[j] as number);
      x[i * f + j] = missing ? 0 : (r.x[j] as number);
      mask[i * f + j] = missing ? 0 : 1;
    }
    for (let m = 0; m < mm; m++) {
      const mode = r.params.modes[m < r.params.modes.length ? m : 0];
      if (!mode) continue;
      for (let j = 0; j < fr; j++) {
        center[(i * mm + m) * f + j] = mode.center[j] as number;
        scale[(i * mm + m) * f + j] = mode.scale[j] as number;
        for (let k = 0; k < fr; k++) precision[(i * mm + m) * f * f + j * f + k] = mode.precision[j * fr + k] as number;
      }
    }
  });
  const out = await session.run({
    x: new ort.Tensor('float32', x, [n, f]),
    mask: new ort.Tensor('float32', mask, [n, f]),
    center: new ort.Tensor('float32', center, [n, mm, f]),
    scale: new ort.Tensor('float32', scale, [n, mm, f]),
    precision: new ort.Tensor('float32', precision, [n, mm, f, f]),
  });
  const scores = out.score?.data as Float32Array;
  const resid = out.resid?.data as Float32Array;
  let maxRelErr = 0;
  // resid: absolute error in conditional sd (float32 through a matrix product of up to 21 terms).
  let maxResidErr = 0;
  rows.forEach((r, i) => {
    const ref = referenceScore(r.x, r.params, Z_CLIP);
    const err = Math.abs((scores[i] as number) - ref.score) / Math.max(1, Math.abs(ref.score));
    if (err > maxRelErr) maxRelErr = err;
    for (let j = 0; j < f; j++) {
      const want = j < ref.resid.length ? (ref.resid[j] as number) : 0;
      const e = Math.abs((resid[i * f + j] as number) - want) / Math.max(1, Math.abs(want));
      if (!(e <= maxResidErr)) maxResidErr = Number.isNaN(e) ? Infinity : e;
    }
  });
  await session.release();
  return { cases: n, maxRelErr, maxResidErr };
}

async function main(): Promise<void> {
  const outDir = join(dirname(fileURLToPath(import.meta.url)), '..');
  const bytes = buildScorerModel(Z_CLIP);
  const file = `${BUILTIN_NAME}.onnx`;
  writeFileSync(join(outDir, file), bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const check = await referenceCheck(bytes, SEED);
  console.log(`wrote models/${file} (${bytes.length} bytes, sha256 ${sha256})`);
  console.log(`reference check: ${check.cases} windows, max relative error onnxruntime vs TypeScript = ${check.maxRelErr.toExponential(2)} (score), ${check.maxResidErr.toExponential(2)} (resid)`);
  if (!(check.maxRelErr < 1e-4) || !(check.maxResidErr < 1e-3)) {
    console.error('reference check FAILED (tolerance 1e-4)');
    process.exitCode = 1;
    return;
  }
  const manifest = manifestFor(file, sha256, { cases: check.cases, maxRelErr: Number(check.maxRelErr.toExponential(2)), maxResidErr: Number(check.maxResidErr.toExponential(2)) });
  writeFileSync(join(outDir, `${BUILTIN_NAME}.manifest.json`), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`wrote models/${BUILTIN_NAME}.manifest.json`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
