/** Detection routes: window scores, baselines (progress, re-learn) and the loaded model. */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NAME_PATTERN } from '../../contract/reading.js';
import type { Detection } from '../../detect/index.js';
import { sendError } from '../errors.js';
import { timeParam } from '../time.js';

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const machineIdParam = z.object({ id: z.string().regex(NAME_PATTERN, 'machine id must match [A-Za-z0-9_.-]{1,64}') });
const contributorSchema = z.object({ metric: z.string(), feature: z.string(), value: z.number(), baseline: z.number(), ratio: z.number(), text: z.string() });

const baselineSchema = z.object({
  machine: z.string(),
  phase: z.enum(['learning', 'scoring']),
  progress: z.number(),
  windows: z.number(),
  minWindows: z.number(),
  durationMs: z.number(),
  from: z.number().nullable(),
  to: z.number().nullable(),
  fittedAt: z.number().nullable(),
  threshold: z.number().nullable(),
  metrics: z.array(z.string()),
  counters: z.array(z.string()).describe('Metrics that only counted up during the baseline (parts, cycles, kWh): modelled by their rate, not their level.'),
  features: z.array(z.string()),
  modes: z.number(),
  rareStates: z.number().describe('Rare states kept from the baseline (windows of runs that would have alerted in the baseline itself); a later window close to one is not counted above the threshold.'),
  unlearnedMetrics: z.array(z.string()),
  modelVersion: z.string().nullable(),
  windowMs: z.number().nullable().describe('This machine\'s window length (ms): detection.windowMs, or a whole multiple of it for a machine that reports rarely (detection.targetSamplesPerWindow); null while its first readings are being timed.'),
  hopMs: z.number().nullable().describe('This machine\'s hop (ms), scaled like windowMs.'),
  samplingIntervalMs: z.number().nullable().describe('Median interval between the machine\'s first readings (ms); null while measured or when not known.'),
  reportByException: z.boolean().describe('The machine\'s readings each carry only some of its metrics: detection completes them with the last value of the others (detection.holdValues).'),
  sparseWindows: z.number().describe('Windows since start-up or the last reset with fewer than detection.minSamplesPerWindow readings (neither learnt nor scored); many = the machine reports less often than its windows need.'),
});

/** Finite numbers only: JSON cannot carry NaN/Infinity, and a score API must not invent zeros. */
const finite = (n: number): number | null => (Number.isFinite(n) ? n : null);

export function detectionRoutes(deps: { detection: Detection; knownMachine: (id: string) => boolean }): FastifyPluginAsync {
  const { detection } = deps;
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get(
      '/api/v1/machines/:id/anomaly',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['detection'],
          summary: 'Window anomaly scores of a machine with its threshold, oldest first',
          description:
            'Windows whose end is within from..to (default: the last 24 h), in ascending time order. When more windows match than `limit` (default 1000), ' +
            'the newest `limit` are returned; for the older ones, repeat the call with `to` = the first returned windowEnd - 1.',
          params: machineIdParam,
          querystring: z.strictObject({
            from: timeParam.optional().describe('Start (window end, inclusive): epoch ms or ISO-8601; default 24 h ago'),
            to: timeParam.optional().describe('End (inclusive): epoch ms or ISO-8601; default now'),
            limit: z.coerce.number().int().min(1).max(10000).default(1000).describe('Most windows returned (1-10000, default 1000): the newest when more match'),
          }),
          response: {
            200: z.object({
              machine: z.string(),
              windows: z.array(
                z.object({
                  windowStart: z.number(),
                  windowEnd: z.number(),
                  phase: z.enum(['learning', 'scoring']),
                  score: z.number().nullable(),
                  threshold: z.number().nullable(),
                  above: z.boolean(),
                  contributors: z.array(contributorSchema),
                }),
              ),
            }),
            400: errorSchema,
          },
        },
      },
      async (req, reply) => {
        const to = req.query.to ?? Date.now();
        const from = req.query.from ?? to - 86400_000;
        if (from > to) return sendError(reply, 400, 'BAD_REQUEST', 'querystring: from is after to');
        const rows = detection.anomalyHistory(req.params.id, from, to, req.query.limit);
        return {
          machine: req.params.id,
          windows: rows.map((r) => ({
            windowStart: r.windowStart,
            windowEnd: r.windowEnd,
            phase: r.phase,
            score: finite(r.score),
            threshold: r.threshold === null ? null : finite(r.threshold),
            above: r.above,
            contributors: r.contributors,
          })),
        };
      },
    );

    app.get(
      '/api/v1/machines/:id/baseline',
      {
        config: { scope: 'read' },
        schema: { tags: ['detection'], summary: 'Baseline of a machine: learning progress, or the fitted baseline and its threshold', params: machineIdParam, response: { 200: baselineSchema, 404: errorSchema } },
      },
      async (req, reply) => {
        const b = detection.baseline(req.params.id);
        if (!b) return sendError(reply, 404, 'MACHINE_NOT_FOUND', `no readings from machine "${req.params.id}" yet`);
        return b;
      },
    );

    app.post(
      '/api/v1/machines/:id/baseline/reset',
      {
        config: { scope: 'admin' },
        schema: {
          tags: ['detection'],
          summary: 'Forget the baseline and learn it again from the next windows (after maintenance, a tool change, a move)',
          params: machineIdParam,
          // nullish, as POST /alerts/:id/resolve: fastify hands a request without a body over as null.
          body: z
            .strictObject({ who: z.string().min(1).max(100).optional().describe('Who resets (name or initials), for the log.'), reason: z.string().max(1000).optional().describe('Why, for the log.') })
            .nullish()
            .describe('Optional; may be omitted.'),
          response: { 200: baselineSchema, 400: errorSchema, 404: errorSchema },
        },
      },
      async (req, reply) => {
        if (!deps.knownMachine(req.params.id) && !detection.baseline(req.params.id)) {
          return sendError(reply, 404, 'MACHINE_NOT_FOUND', `no readings from machine "${req.params.id}" yet`);
        }
        req.log.info({ machine: req.params.id, who: req.body?.who, reason: req.body?.reason }, 'baseline reset requested');
        return detection.resetBaseline(req.params.id);
      },
    );

    app.get(
      '/api/v1/models',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['detection'],
          summary: 'The loaded anomaly model: manifest, inference count and latency',
          response: {
            200: z.object({
              models: z.array(
                z.object({
                  name: z.string(),
                  version: z.string(),
                  manifestPath: z.string(),
                  modelPath: z.string(),
                  manifest: z.record(z.string(), z.unknown()),
                  inferenceRuns: z.number(),
                  windowsScored: z.number(),
                  meanLatencyMs: z.number(),
                  lastLatencyMs: z.number(),
                }),
              ),
            }),
          },
        },
      },
      async () => {
        const m = detection.modelInfo();
        return { models: [{ ...m, manifest: m.manifest as unknown as Record<string, unknown> }] };
      },
    );
  };
}
