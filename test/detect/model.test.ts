import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitParams, referenceScore, selectFeatureKeys, vectorize } from '../../gateway/src/detect/baseline.js';
import { DetectError } from '../../gateway/src/detect/errors.js';
import { builtinManifestPath, ScoringModel } from '../../gateway/src/detect/model.js';
import { encodeModel, floatInit, int64Init, intAttr, node, onnx, tensorInfo, type Dim } from '../../models/src/onnx-builder.js';
import { syntheticRows, Z_CLIP } from '../../models/src/train.js';

const fitOpts = { minShrinkage: 0.01, scaleFloorRel: 0.002, scaleFloorAbs: 1e-9, maxModes: 4, minModeWindows: 12 };

/** A bring-your-own model: score = sum(z^2) over a fixed feature order, built with onnx-proto. */
function byoModel(opts: { inputName?: string; featureDim?: Dim; elemType?: number; outputName?: string } = {}): Uint8Array {
  const input = opts.inputName ?? 'z';
  return encodeModel({
    name: 'byo-sum-of-squares',
    inputs: [tensorInfo(input, ['batch', opts.featureDim ?? 3], opts.elemType ?? onnx.TensorProto.DataType.FLOAT)],
    outputs: [tensorInfo(opts.outputName ?? 'score', ['batch'])],
    initializers: [int64Init('ax', [1], [1])],
    nodes: [node('Mul', [input, input], ['sq']), node('ReduceSum', ['sq', 'ax'], [opts.outputName ?? 'score'], [intAttr('keepdims', 0)])],
  });
}

function writeByo(dir: string, bytes: Uint8Array, manifest: Record<string, unknown>): string {
  writeFileSync(join(dir, 'byo.onnx'), bytes);
  const path = join(dir, 'byo.manifest.json');
  writeFileSync(
    path,
    JSON.stringify({
      name: 'byo-sum-of-squares',
      version: '0.1.0',
      file: 'byo.onnx',
      opset: 18,
      layout: 'fixed',
      featureOrder: ['a:mean', 'b:mean', 'c:std'],
      inputs: [{ name: 'z', dtype: 'float32', shape: ['N', 3] }],
      outputs: [{ name: 'score', dtype: 'float32', shape: ['N'] }],
      params: { zClip: 10 },
      ...manifest,
    }),
  );
  return path;
}

async function expectCode(p: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DetectError);
  expect((e as DetectError).code).toBe(code);
  expect((e as DetectError).message).toMatch(text);
}

describe('built-in ONNX scorer', () => {
  it('onnxruntime output equals the TypeScript reference, batched over machines of different sizes and modes', async () => {
    const model = await ScoringModel.load(builtinManifestPath());
    try {
      const reqs = [];
      for (let i = 0; i < 5; i++) {
        const base = syntheticRows(100 + i, 2 + i, 150);
        const keys = selectFeatureKeys(base, ['mean', 'std', 'presence']);
        const params = fitParams(base.map((r) => vectorize(r, keys)), keys, fitOpts);
        for (const r of [...syntheticRows(100 + i, 2 + i, 10, { noiseSeed: 200 + i }), ...syntheticRows(100 + i, 2 + i, 10, { noiseSeed: 300 + i, breakRelation: true })]) {
          reqs.push({ x: vectorize(r, keys), params });
        }
      }
      // A missing metric (NaN) is imputed at the center in both implementations.
      const first = reqs[0];
      if (first) first.x[0] = NaN;
      expect(new Set(reqs.map((r) => r.params.modes.length)).size).toBeGreaterThan(0);
      const res = await model.score(reqs);
      expect(model.stats.runs).toBe(1); // one session.run for every machine
      reqs.forEach((r, i) => {
        const ref = referenceScore(r.x, r.params, Z_CLIP);
        const got = res[i];
        expect(Math.abs((got?.score as number) - ref.score)).toBeLessThanOrEqual(1e-4 * Math.max(1, ref.score));
        expect(got?.mode).toBe(ref.mode);
        ref.contrib.forEach((c, j) => expect(Math.abs((got?.contrib?.[j] as number) - c)).toBeLessThanOrEqual(1e-4 * Math.max(1, ref.score)));
      });
    } finally {
      await model.close();
    }
  });

  it('scores a broken relationship between in-range channels far above healthy windows', () => {
    const base = syntheticRows(7, 3, 200);
    const keys = selectFeatureKeys(base, ['mean', 'std']);
    const params = fitParams(base.map((r) => vectorize(r, keys)), keys, fitOpts);
    const healthy = syntheticRows(7, 3, 50, { noiseSeed: 8 }).map((r) => referenceScore(vectorize(r, keys), params, Z_CLIP).score);
    const broken = syntheticRows(7, 3, 50, { noiseSeed: 8, breakRelation: true }).map((r) => referenceScore(vectorize(r, keys), params, Z_CLIP).score);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    expect(med(broken)).toBeGreaterThan(3 * med(healthy));
  });
});

describe('bring your own model: contract checks at load', () => {
  it('loads a model built on the fly with onnx-proto and scores with it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    const model = await ScoringModel.load(writeByo(dir, byoModel(), {}));
    try {
      const params = { featureKeys: ['a:mean', 'b:mean', 'c:std'], center: [1, 2, 3], scale: [1, 1, 2], modes: [{ center: [1, 2, 3], scale: [1, 1, 2], precision: [1, 0, 0, 0, 1, 0, 0, 0, 1], windows: 10 }] };
      const res = await model.score([{ x: Float64Array.from([2, 2, 7]), params }]);
      // z = (1, 0, 2) -> 1 + 0 + 4
      expect(res[0]?.score).toBeCloseTo(5, 5);
      expect(res[0]?.contrib).toBeNull();
    } finally {
      await model.close();
    }
  });

  it('refuses an input the gateway cannot feed, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    const path = writeByo(dir, byoModel({ inputName: 'features' }), { inputs: [{ name: 'z', dtype: 'float32', shape: ['N', 3] }] });
    await expectCode(ScoringModel.load(path), 'DETECT_MODEL_INPUT_MISMATCH', /input "features"/);
  });

  it('refuses a wrong input type', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    const bytes = encodeModel({
      name: 'int-input',
      inputs: [tensorInfo('z', ['N', 3], onnx.TensorProto.DataType.DOUBLE)],
      outputs: [tensorInfo('score', ['N'], onnx.TensorProto.DataType.DOUBLE)],
      initializers: [int64Init('ax', [1], [1])],
      nodes: [node('ReduceSum', ['z', 'ax'], ['score'], [intAttr('keepdims', 0)])],
    });
    await expectCode(ScoringModel.load(writeByo(dir, bytes, {})), 'DETECT_MODEL_INPUT_MISMATCH', /"z" has type float64, the contract requires float32/);
  });

  it('refuses a feature dimension that differs from the manifest feature order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    await expectCode(ScoringModel.load(writeByo(dir, byoModel({ featureDim: 4 }), {})), 'DETECT_MODEL_INPUT_MISMATCH', /dimension 1 is 4 but manifest featureOrder has 3/);
  });

  it('refuses a model without a score output, and a manifest input the model lacks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    await expectCode(ScoringModel.load(writeByo(dir, byoModel({ outputName: 'anomaly' }), { outputs: [{ name: 'score', dtype: 'float32', shape: ['N'] }] })), 'DETECT_MODEL_OUTPUT_MISMATCH', /no output named "score"/);
    const dir2 = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    const path = writeByo(dir2, byoModel(), { inputs: [{ name: 'z', dtype: 'float32', shape: ['N', 3] }, { name: 'mask', dtype: 'float32', shape: ['N', 3] }] });
    await expectCode(ScoringModel.load(path), 'DETECT_MODEL_INPUT_MISMATCH', /declares input "mask"/);
  });

  it('refuses a per-machine model with a fixed feature dimension, and an invalid manifest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    await expectCode(ScoringModel.load(writeByo(dir, byoModel(), { layout: 'per-machine', featureSet: ['mean'] })), 'DETECT_MODEL_INPUT_MISMATCH', /layout per-machine needs a symbolic feature dimension/);
    const dir2 = mkdtempSync(join(tmpdir(), 'detect-byo-'));
    await expectCode(ScoringModel.load(writeByo(dir2, byoModel(), { featureOrder: ['a:median'] })), 'DETECT_MANIFEST_INVALID', /featureOrder\.0/);
    await expectCode(ScoringModel.load(join(dir2, 'nope.json')), 'DETECT_MANIFEST_NOT_FOUND', /nope\.json/);
  });
});

void floatInit;
