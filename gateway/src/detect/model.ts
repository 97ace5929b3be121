/**
 * Loading an ONNX scoring model with its manifest, checking it against the model contract, and scoring
 * batches of windows from many machines in as few session.run calls as possible.
 *
 * Model contract (documented for users in models/README.md):
 * - Inputs are float32 and named after what the gateway feeds:
 *     x [N,F] raw window features (a missing metric is imputed at the baseline center),
 *     z [N,F] features standardised with the machine's overall baseline, clip((x-center)/scale, +-zClip),
 *     mask [N,F] (1 = feature present, 0 = missing or padding),
 *     center [N,M,F], scale [N,M,F], precision [N,M,F,F]: the machine's M operating modes (precision
 *     divided by F); machines with fewer modes are padded by repeating mode 0.
 * - Output `score` float32 [N] (or [N,1]): higher = more abnormal. Optional `contrib` float32 [N,F]:
 *   per-feature share of the score, used to explain an alert. Optional `mode` float32 [N]: index of
 *   the operating mode the window was compared with. Optional `resid` float32 [N,F]: each feature's
 *   residual in standard deviations (about N(0,1) when healthy), averaged over windows by the drift
 *   statistic; without it the drift statistic is off.
 * - layout `per-machine`: F is each machine's own feature list (metrics x manifest.featureSet), padded
 *   to the batch's largest F, so F must be a symbolic dimension. layout `fixed`: F is
 *   manifest.featureOrder; a machine lacking some of these features gets them at the center (mask 0).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { DetectError } from './errors.js';
import { FEATURE_NAMES, parseFeatureKey } from './features.js';
import type { ModelParams } from './baseline.js';
import { standardizeWith } from './baseline.js';

export const INPUT_SOURCES = ['x', 'z', 'center', 'scale', 'mask', 'precision'] as const;
export type InputSource = (typeof INPUT_SOURCES)[number];
const RANK: Record<InputSource, number> = { x: 2, z: 2, mask: 2, center: 3, scale: 3, precision: 4 };
const SHAPE_TEXT: Record<InputSource, string> = { x: '[N,F]', z: '[N,F]', mask: '[N,F]', center: '[N,M,F]', scale: '[N,M,F]', precision: '[N,M,F,F]' };

const dimSchema = z.union([z.number().int().positive(), z.string().min(1)]);

export const manifestSchema = z
  .object({
    name: z.string().min(1).describe('Model name, shown in /api/v1/models.'),
    version: z.string().min(1).describe('Model version; written with every window score.'),
    file: z.string().min(1).describe('ONNX file, relative to the manifest.'),
    opset: z.number().int().positive().describe('Default-domain opset the graph uses.'),
    description: z.string().optional(),
    layout: z.enum(['per-machine', 'fixed']),
    featureSet: z.array(z.enum(FEATURE_NAMES)).min(1).optional(),
    featureOrder: z.array(z.string()).min(1).optional(),
    inputs: z
      .array(z.object({ name: z.enum(INPUT_SOURCES), dtype: z.literal('float32'), shape: z.array(dimSchema) }))
      .min(1),
    outputs: z.array(z.object({ name: z.string().min(1), dtype: z.literal('float32'), shape: z.array(dimSchema) })).min(1),
    params: z.object({ zClip: z.number().positive() }).default({ zClip: 10 }),
    threshold: z.record(z.string(), z.unknown()).optional(),
    training: z.record(z.string(), z.unknown()).optional(),
    reference: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((m, ctx) => {
    if (m.layout === 'per-machine' && !m.featureSet) {
      ctx.addIssue({ code: 'custom', path: ['featureSet'], message: 'required when layout is per-machine' });
    }
    if (m.layout === 'fixed') {
      if (!m.featureOrder) ctx.addIssue({ code: 'custom', path: ['featureOrder'], message: 'required when layout is fixed' });
      m.featureOrder?.forEach((k, i) => {
        if (!parseFeatureKey(k)) {
          ctx.addIssue({ code: 'custom', path: ['featureOrder', i], message: `"${k}" is not <metric>:<${FEATURE_NAMES.join('|')}>` });
        }
      });
    }
    if (!m.outputs.some((o) => o.name === 'score')) ctx.addIssue({ code: 'custom', path: ['outputs'], message: 'must declare an output named "score"' });
  });
export type ModelManifest = z.infer<typeof manifestSchema>;

/** models/ of this package: walk up from this file (works from src via tsx and from dist). */
export function builtinModelsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const cand = join(dir, 'models', 'mahalanobis-v1.manifest.json');
    if (existsSync(cand)) return join(dir, 'models');
    dir = dirname(dir);
  }
  return resolve('models');
}

export function builtinManifestPath(): string {
  return join(builtinModelsDir(), 'mahalanobis-v1.manifest.json');
}

export interface ScoreRequest {
  /** Raw features in params.featureKeys order; NaN = missing. */
  x: Float64Array;
  params: ModelParams;
}
export interface ScoreResult {
  score: number;
  /** Per-feature contribution in params.featureKeys order, when the model outputs one. */
  contrib: Float64Array | null;
  /** Operating mode compared with, when the model outputs one. */
  mode: number | null;
  /**
   * Per-feature conditional residual in standard deviations (about N(0,1) when healthy), when the model
   * outputs `resid`; the input of the drift statistic (drift.ts). 0 for a missing feature.
   */
  resid: Float64Array | null;
}

export interface ModelStats {
  runs: number;
  windowsScored: number;
  lastRunMs: number;
  totalRunMs: number;
}

export class ScoringModel {
  readonly stats: ModelStats = { runs: 0, windowsScored: 0, lastRunMs: 0, totalRunMs: 0 };
  private readonly hasContrib: boolean;
  private readonly hasMode: boolean;
  private readonly hasResid: boolean;
  private readonly inputNames: InputSource[];

  private constructor(
    readonly manifest: ModelManifest,
    readonly manifestPath: string,
    readonly modelPath: string,
    private readonly session: ort.InferenceSession,
    private readonly maxBatchFloats: number,
  ) {
    this.hasContrib = session.outputNames.includes('contrib');
    this.hasMode = session.outputNames.includes('mode');
    this.hasResid = session.outputNames.includes('resid');
    this.inputNames = manifest.inputs.map((i) => i.name);
  }

  /** Load, validate against the contract, refuse with a DetectError naming what differs. */
  static async load(manifestPath: string, opts: { maxBatchFloats?: number; intraOpThreads?: number } = {}): Promise<ScoringModel> {
    const manifest = readManifest(manifestPath);
    const modelPath = isAbsolute(manifest.file) ? manifest.file : join(dirname(manifestPath), manifest.file);
    if (!existsSync(modelPath)) {
      throw new DetectError('DETECT_MODEL_NOT_FOUND', `model file ${modelPath} (manifest ${manifestPath} field "file") does not exist`);
    }
    let session: ort.InferenceSession;
    try {
      // One intra-op thread: the gateway shares 2 cores with the broker and the HTTP server.
      session = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: opts.intraOpThreads ?? 1,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
    } catch (e) {
      throw new DetectError('DETECT_MODEL_LOAD_FAILED', `onnxruntime could not load ${modelPath}: ${(e as Error).message}`, { cause: e });
    }
    try {
      checkContract(manifest, session, manifestPath);
    } catch (e) {
      await session.release().catch(() => undefined);
      throw e;
    }
    return new ScoringModel(manifest, manifestPath, modelPath, session, opts.maxBatchFloats ?? 4_000_000);
  }

  /** The model outputs per-feature residuals, so the drift statistic can run. */
  get hasResiduals(): boolean {
    return this.hasResid;
  }

  get zClip(): number {
    return this.manifest.params.zClip;
  }

  /**
   * Score a batch. Requests are grouped so each run stays under maxBatchFloats (the precision input is
   * N*F*F): usually one run per tick; a machine with very many features gets a run of its own.
   */
  async score(reqs: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const out = new Array<ScoreResult>(reqs.length);
    const order = reqs
      .map((r, i) => ({ i, f: this.widthOf(r), m: Math.max(1, r.params.modes.length) }))
      .sort((a, b) => a.f - b.f || a.m - b.m);
    const perRow = (f: number, m: number) => (this.inputNames.includes('precision') ? m * f * f : 0) + 3 * m * f + 3 * f;
    let start = 0;
    while (start < order.length) {
      let end = start + 1;
      let maxM = (order[start] as { m: number }).m;
      while (end < order.length) {
        const next = order[end] as { f: number; m: number };
        const m = Math.max(maxM, next.m);
        if ((end - start + 1) * perRow(next.f, m) > this.maxBatchFloats) break;
        maxM = m;
        end++;
      }
      const chunk = order.slice(start, end);
      const res = await this.runChunk(chunk.map((c) => reqs[c.i] as ScoreRequest), (chunk[chunk.length - 1] as { f: number }).f, maxM);
      chunk.forEach((c, k) => {
        out[c.i] = res[k] as ScoreResult;
      });
      start = end;
    }
    return out;
  }

  private widthOf(r: ScoreRequest): number {
    return this.manifest.layout === 'fixed' ? (this.manifest.featureOrder as string[]).length : Math.max(1, r.params.featureKeys.length);
  }

  private async runChunk(reqs: readonly ScoreRequest[], f: number, mm: number): Promise<ScoreResult[]> {
    const n = reqs.length;
    const need = new Set(this.inputNames);
    const size: Record<InputSource, number> = { x: n * f, z: n * f, mask: n * f, center: n * mm * f, scale: n * mm * f, precision: n * mm * f * f };
    const buf: Partial<Record<InputSource, Float32Array>> = {};
    for (const name of need) buf[name] = new Float32Array(size[name]);
    reqs.forEach((r, row) => {
      const p = r.params;
      const fr = p.featureKeys.length;
      // For a fixed layout the baseline was fitted on manifest.featureOrder, so indexes coincide.
      const z = buf.z ? standardizeWith(r.x, p.center, p.scale, this.zClip) : undefined;
      for (let j = 0; j < f; j++) {
        const present = j < fr && !Number.isNaN(r.x[j] as number);
        const c = j < fr ? (p.center[j] as number) : 0;
        // A missing value goes in as the center (mask 0 tells models that use the mask to ignore it).
        if (buf.x) buf.x[row * f + j] = present ? (r.x[j] as number) : c;
        if (buf.mask) buf.mask[row * f + j] = present ? 1 : 0;
        if (buf.z && z) buf.z[row * f + j] = j < fr ? (z[j] as number) : 0;
      }
      for (let m = 0; m < mm; m++) {
        const mode = p.modes[m < p.modes.length ? m : 0];
        if (!mode) continue;
        const base = (row * mm + m) * f;
        for (let j = 0; j < f; j++) {
          if (buf.center) buf.center[base + j] = j < fr ? (mode.center[j] as number) : 0;
          if (buf.scale) buf.scale[base + j] = j < fr ? (mode.scale[j] as number) : 1;
        }
        if (buf.precision) {
          const pb = (row * mm + m) * f * f;
          for (let i = 0; i < fr; i++) for (let j = 0; j < fr; j++) buf.precision[pb + i * f + j] = mode.precision[i * fr + j] as number;
        }
      }
    });
    const feeds: Record<string, ort.Tensor> = {};
    const dims: Record<InputSource, number[]> = { x: [n, f], z: [n, f], mask: [n, f], center: [n, mm, f], scale: [n, mm, f], precision: [n, mm, f, f] };
    for (const name of need) feeds[name] = new ort.Tensor('float32', buf[name] as Float32Array, dims[name]);
    const t0 = performance.now();
    let res: ort.InferenceSession.ReturnType;
    try {
      res = await this.session.run(feeds);
    } catch (e) {
      throw new DetectError('DETECT_MODEL_RUN_FAILED', `model ${this.manifest.name} failed on a batch of ${n}x${f}: ${(e as Error).message}`, { cause: e });
    }
    const ms = performance.now() - t0;
    this.stats.runs += 1;
    this.stats.windowsScored += n;
    this.stats.lastRunMs = ms;
    this.stats.totalRunMs += ms;
    const scores = res.score?.data as Float32Array;
    const contrib = this.hasContrib ? (res.contrib?.data as Float32Array | undefined) : undefined;
    const modes = this.hasMode ? (res.mode?.data as Float32Array | undefined) : undefined;
    const resid = this.hasResid ? (res.resid?.data as Float32Array | undefined) : undefined;
    return reqs.map((r, row) => {
      const fr = r.params.featureKeys.length;
      let c: Float64Array | null = null;
      if (contrib) {
        c = new Float64Array(fr);
        for (let j = 0; j < fr; j++) c[j] = contrib[row * f + j] as number;
      }
      let rr: Float64Array | null = null;
      if (resid) {
        rr = new Float64Array(fr);
        for (let j = 0; j < fr; j++) {
          const v = resid[row * f + j] as number;
          rr[j] = Number.isFinite(v) ? v : 0;
        }
      }
      // Padded modes repeat mode 0, so an index beyond the machine's modes means mode 0.
      const mode = modes ? (modes[row] as number) : null;
      return { score: scores[row] as number, contrib: c, mode: mode !== null && mode >= r.params.modes.length ? 0 : mode, resid: rr };
    });
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export function readManifest(path: string): ModelManifest {
  if (!existsSync(path)) {
    throw new DetectError('DETECT_MANIFEST_NOT_FOUND', `model manifest ${path} does not exist (config detection.model.manifest)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DetectError('DETECT_MANIFEST_INVALID', `model manifest ${path} is not JSON: ${(e as Error).message}`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    const where = i ? i.path.map(String).join('.') || '(root)' : '(root)';
    throw new DetectError('DETECT_MANIFEST_INVALID', `model manifest ${path}: ${where}: ${i?.message ?? 'invalid'}`);
  }
  return r.data;
}

function fmtShape(s: readonly (number | string)[]): string {
  return `[${s.join(',')}]`;
}

/** Compare the session's real inputs/outputs with the manifest and the contract; throw on any difference. */
export function checkContract(m: ModelManifest, session: Pick<ort.InferenceSession, 'inputNames' | 'outputNames' | 'inputMetadata' | 'outputMetadata'>, where: string): void {
  const declared = m.inputs.map((i) => i.name as string);
  const actual = [...session.inputNames];
  for (const a of actual) {
    if (!(INPUT_SOURCES as readonly string[]).includes(a)) {
      throw new DetectError(
        'DETECT_MODEL_INPUT_MISMATCH',
        `model ${m.name} (${where}) has input "${a}", which the gateway cannot feed; inputs must be named ${INPUT_SOURCES.join(', ')}`,
      );
    }
    if (!declared.includes(a)) {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model ${m.name} (${where}) has input "${a}" that the manifest does not declare in "inputs"`);
    }
  }
  for (const d of declared) {
    if (!actual.includes(d)) {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `manifest ${where} declares input "${d}" but the model's inputs are ${actual.join(', ') || '(none)'}`);
    }
  }
  const fixedF = m.layout === 'fixed' ? (m.featureOrder as string[]).length : undefined;
  for (const meta of session.inputMetadata) {
    const name = meta.name as InputSource;
    if (!meta.isTensor) throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" is not a tensor`);
    if (meta.type !== 'float32') {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" has type ${meta.type}, the contract requires float32`);
    }
    const rank = RANK[name];
    if (meta.shape.length !== rank) {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" has shape ${fmtShape(meta.shape)}, the contract requires ${SHAPE_TEXT[name]}`);
    }
    const decl = m.inputs.find((i) => i.name === name);
    if (decl && decl.shape.length !== rank) {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `manifest declares input "${name}" with shape ${fmtShape(decl.shape)}, the contract requires rank ${rank}`);
    }
    if (typeof meta.shape[0] === 'number' && meta.shape[0] !== -1) {
      throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" has a fixed batch dimension ${meta.shape[0]}; dimension 0 must be symbolic (N)`);
    }
    for (let k = 1; k < rank; k++) {
      const dim = meta.shape[k];
      // The mode dimension (M, dimension 1 of center/scale/precision) varies per batch.
      if (rank >= 3 && k === 1) {
        if (typeof dim === 'number' && dim >= 0) {
          throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" has fixed mode dimension ${dim}; dimension 1 must be symbolic (M)`);
        }
        continue;
      }
      const isFixed = typeof dim === 'number' && dim >= 0;
      if (m.layout === 'per-machine' && isFixed) {
        throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" has fixed dimension ${k} = ${dim}; layout per-machine needs a symbolic feature dimension (F)`);
      }
      if (fixedF !== undefined && isFixed && dim !== fixedF) {
        throw new DetectError('DETECT_MODEL_INPUT_MISMATCH', `model input "${name}" dimension ${k} is ${dim} but manifest featureOrder has ${fixedF} features`);
      }
    }
  }
  const score = session.outputMetadata.find((o) => o.name === 'score');
  if (!score) {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model ${m.name} (${where}) has no output named "score" (outputs: ${session.outputNames.join(', ')})`);
  }
  if (!score.isTensor || score.type !== 'float32') {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model output "score" must be a float32 tensor, got ${score.isTensor ? score.type : 'a non-tensor'}`);
  }
  if (!(score.shape.length === 1 || (score.shape.length === 2 && score.shape[1] === 1))) {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model output "score" has shape ${fmtShape(score.shape)}, the contract requires [N] or [N,1]`);
  }
  const contrib = session.outputMetadata.find((o) => o.name === 'contrib');
  if (contrib && (!contrib.isTensor || contrib.type !== 'float32' || contrib.shape.length !== 2)) {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model output "contrib" must be float32 [N,F]`);
  }
  const resid = session.outputMetadata.find((o) => o.name === 'resid');
  if (resid && (!resid.isTensor || resid.type !== 'float32' || resid.shape.length !== 2)) {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model output "resid" must be float32 [N,F]`);
  }
  const mode = session.outputMetadata.find((o) => o.name === 'mode');
  if (mode && (!mode.isTensor || mode.type !== 'float32' || mode.shape.length !== 1)) {
    throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `model output "mode" must be float32 [N]`);
  }
  for (const o of m.outputs) {
    if (!session.outputNames.includes(o.name)) {
      throw new DetectError('DETECT_MODEL_OUTPUT_MISMATCH', `manifest ${where} declares output "${o.name}" but the model's outputs are ${session.outputNames.join(', ')}`);
    }
  }
}
