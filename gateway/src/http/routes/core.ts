/** Core routes: liveness, readiness, Prometheus metrics, machines, readings, rejects, outbox. */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { NAME_PATTERN, REJECT_REASONS } from '../../contract/reading.js';
import type { MachineInfo } from '../../machines/registry.js';
import type { RejectLog } from '../../ingest/rejects.js';
import type { OutboxStats, QuarantinedEntry } from '../../outbox/outbox.js';
import type { ReadingSource } from '../../store/embedded.js';
import { sendError } from '../errors.js';
import { timeParam } from '../time.js';

export interface ReadinessCheck {
  ok: boolean;
  detail: string;
}

export interface CoreRouteDeps {
  registry: Registry;
  machines: { list(): MachineInfo[]; get(id: string): MachineInfo | undefined };
  readings: ReadingSource;
  /** Which sink holds the readings ("embedded", "influxdb-v1", "influxdb-v2"). */
  readingsFrom: string;
  rejects: RejectLog;
  outbox: { stats(): OutboxStats; listQuarantine(limit: number): QuarantinedEntry[] };
  readiness(): Promise<Record<string, ReadinessCheck>>;
  /** Refresh gauges that are sampled (outbox depth/age) right before a scrape. */
  beforeScrape(): void;
  startedAt: number;
  version: string;
}

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const machineIdParam = z.object({ id: z.string().regex(NAME_PATTERN, 'machine id must match [A-Za-z0-9_.-]{1,64}') });

const machineSchema = z.object({
  id: z.string(),
  firstTs: z.number(),
  lastTs: z.number(),
  lastArrival: z.number(),
  readings: z.number(),
  metrics: z.array(z.string()),
  site: z.string().optional(),
  line: z.string().optional(),
  kind: z.string().optional(),
  description: z.string().optional(),
});

function machineOut(m: MachineInfo): z.infer<typeof machineSchema> {
  const out: z.infer<typeof machineSchema> = {
    id: m.id,
    firstTs: m.firstTs,
    lastTs: m.lastTs,
    lastArrival: m.lastArrival,
    readings: m.readings,
    metrics: m.metrics,
  };
  if (m.site) out.site = m.site;
  if (m.line) out.line = m.line;
  if (m.kind) out.kind = m.kind;
  if (m.description) out.description = m.description;
  return out;
}

export function coreRoutes(deps: CoreRouteDeps): FastifyPluginAsync {
  return async (fastify) => {
    const app = fastify.withTypeProvider<ZodTypeProvider>();

    app.get('/health', { schema: { tags: ['health'], summary: 'Liveness: the process is up', response: { 200: z.object({ status: z.literal('ok'), uptimeS: z.number(), version: z.string() }) } } }, async () => ({
      status: 'ok' as const,
      uptimeS: Math.round((Date.now() - deps.startedAt) / 1000),
      version: deps.version,
    }));

    app.get(
      '/ready',
      {
        schema: {
          tags: ['health'],
          summary: 'Readiness: broker listening, sink reachable, outbox below its budget threshold',
          response: { 200: z.object({ ready: z.boolean(), checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string() })) }), 503: z.object({ ready: z.boolean(), checks: z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string() })) }) },
        },
      },
      async (_req, reply) => {
        const checks = await deps.readiness();
        const ready = Object.values(checks).every((c) => c.ok);
        return reply.code(ready ? 200 : 503).send({ ready, checks });
      },
    );

    app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics (text exposition format)' } }, async (_req, reply) => {
      deps.beforeScrape();
      reply.header('content-type', deps.registry.contentType);
      return deps.registry.metrics();
    });

    app.get(
      '/api/v1/machines',
      { config: { scope: 'read' }, schema: { tags: ['machines'], summary: 'Every machine seen: first/last reading time, readings count, metric names', response: { 200: z.object({ machines: z.array(machineSchema) }) } } },
      async () => ({ machines: deps.machines.list().map(machineOut) }),
    );

    app.get(
      '/api/v1/machines/:id',
      { config: { scope: 'read' }, schema: { tags: ['machines'], summary: 'One machine', params: machineIdParam, response: { 200: machineSchema, 404: errorSchema } } },
      async (req, reply) => {
        const m = deps.machines.get(req.params.id);
        if (!m) return sendError(reply, 404, 'MACHINE_NOT_FOUND', `no readings from machine "${req.params.id}" yet`);
        return machineOut(m);
      },
    );

    app.get(
      '/api/v1/machines/:id/readings',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['machines'],
          summary: 'Stored readings of a machine (from the embedded store, or from InfluxDB when it is the sink)',
          params: machineIdParam,
          querystring: z.strictObject({
            from: timeParam.optional().describe('Start (inclusive): epoch ms or ISO-8601'),
            to: timeParam.optional().describe('End (inclusive): epoch ms or ISO-8601'),
            metric: z
              .union([z.string(), z.array(z.string())])
              .optional()
              .transform((v) => (v === undefined ? undefined : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s.length > 0)))
              .refine((v) => v === undefined || (v.length <= 64 && v.every((s) => NAME_PATTERN.test(s))), 'metric names must match [A-Za-z0-9_.-]{1,64} (at most 64)')
              .describe('Only these metrics (repeat or comma-separate)'),
            limit: z.coerce.number().int().min(1).max(10000).default(100).describe('Most readings returned (1-10000)'),
            order: z.enum(['asc', 'desc']).default('desc').describe('desc (newest first, default) or asc'),
          }),
          response: {
            200: z.object({
              machine: z.string(),
              source: z.string(),
              readings: z.array(z.object({ ts: z.number(), time: z.string(), metrics: z.record(z.string(), z.number()) })),
            }),
            400: errorSchema,
            502: errorSchema,
          },
        },
      },
      async (req, reply) => {
        const q = req.query;
        if (q.from !== undefined && q.to !== undefined && q.from > q.to) return sendError(reply, 400, 'BAD_REQUEST', 'querystring: from is after to');
        const rows = await deps.readings.queryReadings({ machine: req.params.id, from: q.from, to: q.to, metrics: q.metric, limit: q.limit, order: q.order });
        return {
          machine: req.params.id,
          source: deps.readingsFrom,
          readings: rows.map((r) => ({ ts: r.ts, time: new Date(r.ts).toISOString(), metrics: r.metrics })),
        };
      },
    );

    app.get(
      '/api/v1/rejects',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['ingest'],
          summary: 'The most recent rejected messages, newest first, with the reason',
          querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(10000).optional() }),
          response: {
            200: z.object({
              rejects: z.array(
                z.object({
                  at: z.number(),
                  time: z.string(),
                  reason: z.enum(REJECT_REASONS),
                  detail: z.string(),
                  topic: z.string(),
                  clientId: z.string().nullable(),
                  payloadPreview: z.string(),
                  payloadBytes: z.number(),
                }),
              ),
            }),
          },
        },
      },
      async (req) => ({ rejects: deps.rejects.list(req.query.limit).map((r) => ({ ...r, time: new Date(r.at).toISOString() })) }),
    );

    app.get(
      '/api/v1/outbox',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['ingest'],
          summary: 'Outbox state: readings waiting for the sink, bytes against the budget, oldest age, quarantined count',
          response: { 200: z.object({ depth: z.number(), bytes: z.number(), maxBytes: z.number(), oldestAgeS: z.number().nullable(), quarantined: z.number(), held: z.number().describe('MQTT messages held without acknowledgement while the budget is full (reject policy)') }) },
        },
      },
      async () => {
        const s = deps.outbox.stats();
        return { depth: s.depth, bytes: s.bytes, maxBytes: s.maxBytes, oldestAgeS: s.oldestArrival === null ? null : (Date.now() - s.oldestArrival) / 1000, quarantined: s.quarantined, held: s.held };
      },
    );

    app.get(
      '/api/v1/quarantine',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['ingest'],
          summary: 'Readings the sink refused as malformed (HTTP 400), kept instead of blocking the queue',
          querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(10000).default(100) }),
          response: { 200: z.object({ quarantined: z.array(z.object({ id: z.number(), machine: z.string(), ts: z.number(), metrics: z.record(z.string(), z.number()), error: z.string(), at: z.number() })) }) },
        },
      },
      async (req) => ({ quarantined: deps.outbox.listQuarantine(req.query.limit) }),
    );
  };
}
