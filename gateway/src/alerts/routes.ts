/**
 * HTTP API of alerts (fastify plugin, zod schemas -> validation, serialization and OpenAPI).
 *
 * Register it unwrapped (not with fastify-plugin): its error handler is scoped to these routes and
 * turns AlertError and request-validation errors into `{ error: { code, message } }`; anything
 * else is re-thrown to the server's own error handler.
 */
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { type FastifyPluginAsyncZod, hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NAME_PATTERN } from '../contract/reading.js';
import { ALERT_STATES, AlertError, CONDITION_KINDS, type AlertEngine, type AlertTransition } from './types.js';

const SEVERITY = z.enum(['info', 'warning', 'critical']);
const KIND = z.enum(CONDITION_KINDS);

export const contributorSchema = z.object({
  metric: z.string().describe('Metric name as published.'),
  feature: z.string().describe('Feature of the metric, e.g. mean, std, rms, slope, max, min.'),
  value: z.number().describe('Value of the feature (at the peak).'),
  baseline: z.number().describe('Normal value (baseline) or the limit that was crossed.'),
  ratio: z.number().describe('How far from normal (e.g. 4.1 = 4.1x baseline).'),
  text: z.string().describe('Plain words, e.g. "vibration_rms_mm_s std 4.1x baseline".'),
});

const ms = z.number().int();
export const alertSchema = z
  .object({
    id: z.string().describe('Alert id.'),
    machine: z.string().describe('Machine id.'),
    kind: KIND.describe('anomaly (model), limit (static limit rule) or silence (machine stopped sending).'),
    severity: SEVERITY.describe('Highest severity reached.'),
    state: z.enum(ALERT_STATES).describe('open -> acknowledged -> resolved.'),
    message: z.string().describe('Latest one-sentence description.'),
    startedAt: ms.describe('Event time the condition started, epoch ms.'),
    openedAt: ms.describe('Gateway time the alert was opened, epoch ms.'),
    updatedAt: ms.describe('Gateway time of the last change, epoch ms.'),
    score: z.number().nullable().describe('Latest score (anomaly score, metric value, or seconds of silence).'),
    peakScore: z.number().nullable().describe('Score furthest beyond the threshold while active.'),
    threshold: z.number().nullable().describe('Threshold (or limit) the peak score was compared with.'),
    peakAt: ms.nullable().describe('Gateway time of the peak, epoch ms.'),
    contributors: z.array(contributorSchema).describe('Top contributing metrics and features at the peak.'),
    contributorsText: z.string().describe('Contributor texts joined by "; ".'),
    updateCount: z.number().int().describe('Repeats of the condition folded into this alert.'),
    acknowledgedAt: ms.nullable(),
    acknowledgedBy: z.string().nullable(),
    ackNote: z.string().nullable(),
    resolvedAt: ms.nullable().describe('Event time of the clear (auto) or gateway time (manual), epoch ms.'),
    resolvedBy: z.string().nullable().describe('Who resolved it by hand; null when it resolved itself.'),
    resolveNote: z.string().nullable(),
    resolution: z.enum(['auto', 'manual']).nullable(),
  })
  .describe('An alert.');

export const errorSchema = z
  .object({ error: z.object({ code: z.string().describe('Stable error code, e.g. ALERT_NOT_FOUND.'), message: z.string() }) })
  .describe('Error.');

/** Epoch ms or ISO-8601 date-time in a query string. */
const timeParam = z
  .string()
  .describe('Epoch milliseconds or an ISO-8601 date-time.')
  .transform((s, ctx) => {
    const n = /^\d{1,15}$/.test(s) ? Number(s) : Date.parse(s);
    if (!Number.isFinite(n)) {
      ctx.addIssue({ code: 'custom', message: 'expected epoch milliseconds or an ISO-8601 date-time' });
      return z.NEVER;
    }
    return n;
  });

const listQuery = z
  .object({
    machine: z.string().regex(NAME_PATTERN).optional().describe('Only this machine.'),
    state: z.enum([...ALERT_STATES, 'active']).optional().describe('Only this state; `active` = open or acknowledged.'),
    kind: KIND.optional().describe('Only this kind.'),
    severity: SEVERITY.optional().describe('Only this severity.'),
    from: timeParam.optional().describe('Condition started at or after this time (epoch ms or ISO-8601).'),
    to: timeParam.optional().describe('Condition started before this time (epoch ms or ISO-8601).'),
    limit: z.coerce.number().int().min(1).max(500).default(50).describe('Page size (1-500).'),
    cursor: z.string().min(1).max(200).optional().describe('`nextCursor` of the previous page.'),
  })
  .strict();

const idParams = z.object({ id: z.string().min(1).max(64).describe('Alert id.') });
const who = z.string().trim().min(1).max(128);
const note = z.string().max(2000);
const ackBody = z.object({ who: who.describe('Who acknowledges (name or initials).'), note: note.optional().describe('Free text.') }).strict();
const resolveBody = z
  .object({ who: who.optional().describe('Who resolves.'), note: note.optional().describe('Free text, e.g. what was done.') })
  .strict();
const EVENT_ID = /^\d{1,16}$/;

const streamQuery = z
  .object({
    machine: z.string().regex(NAME_PATTERN).optional().describe('Only transitions of this machine.'),
    kind: KIND.optional().describe('Only transitions of this kind.'),
    lastEventId: z
      .string()
      .regex(EVENT_ID, 'expected an event id of this stream (digits)')
      .optional()
      .describe('Resume after this event id, as the `Last-Event-ID` header does (for clients that cannot set headers); the header wins when both are given.'),
  })
  .strict();

/** A client that does not read its stream is cut off when this much is buffered for it. */
const MAX_STREAM_BUFFER_BYTES = 1024 * 1024;

// Kept in variables (not literals) so they type-check whether or not the server augments
// FastifyContextConfig with `scope`.
const READ = { scope: 'read' as const };
const ACK = { scope: 'ack' as const };

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

function sseFrame(t: { seq: number; event: string }, data: string): string {
  // data is one JSON line (JSON.stringify never emits raw newlines), so one `data:` field suffices.
  return `id: ${t.seq}\nevent: ${t.event}\ndata: ${data}\n\n`;
}

/**
 * What a stream starts with. A client that sent an id gets the transitions after it, or an event `gap`
 * when some may be missing. Either way the stream's last event id ends at the newest transition: a
 * block with an `id` field and no data sets it without dispatching an event (WHATWG HTML 9.2.6), so a
 * client that saw no event yet still resumes from here after a disconnect.
 */
function streamStart(
  hooks: AlertEngine['stream'],
  lastEventId: string | undefined,
  wanted: (e: { machine: string; kind: string }) => boolean,
): string {
  let head = 'retry: 5000\n: connected\n\n';
  if (lastEventId === undefined) return `${head}id: ${hooks.newest()}\n\n`;
  const missed = EVENT_ID.test(lastEventId) ? hooks.since(Number(lastEventId)) : undefined;
  if (missed === undefined) {
    const data = JSON.stringify({
      lastEventId,
      message: 'alert transitions after this id may be missing (older than the gateway keeps, alerts.stream.replay, or from before a restart): re-read GET /api/v1/alerts',
    });
    return `${head}id: ${hooks.newest()}\nevent: gap\ndata: ${data}\n\n`;
  }
  for (const e of missed) if (wanted(e)) head += sseFrame(e, e.data);
  return `${head}id: ${hooks.newest()}\n\n`;
}

export function alertRoutes(deps: { engine: AlertEngine }): FastifyPluginAsync {
  const { engine } = deps;
  const plugin: FastifyPluginAsyncZod = async (app) => {
    const streams = new Set<() => void>();

    app.setErrorHandler((err: FastifyError, _req, reply) => {
      if (err instanceof AlertError) return reply.code(err.statusCode).send(errorBody(err.code, err.message));
      if (hasZodFastifySchemaValidationErrors(err)) {
        const first = err.validation[0];
        const where = [err.validationContext, ...(first?.instancePath ?? '').split('/').filter(Boolean)].filter(Boolean).join('.');
        return reply.code(400).send(errorBody('BAD_REQUEST', `${where || 'request'}: ${first?.message ?? 'invalid'}`));
      }
      throw err; // the server's error handler: stable codes for fastify's own 4xx (413, 415...), logging for 5xx
    });

    app.addHook('preClose', (done) => {
      for (const end of [...streams]) end();
      done();
    });

    app.get(
      '/api/v1/alerts',
      {
        config: READ,
        schema: {
          tags: ['alerts'],
          summary: 'List alerts, newest first (by condition start)',
          querystring: listQuery,
          response: {
            200: z.object({ alerts: z.array(alertSchema), nextCursor: z.string().nullable().describe('Cursor of the next (older) page; null on the last page.') }),
            400: errorSchema,
          },
        },
      },
      async (req) => {
        const q = req.query;
        return engine.list({
          limit: q.limit,
          ...(q.machine !== undefined ? { machine: q.machine } : {}),
          ...(q.state !== undefined ? { state: q.state } : {}),
          ...(q.kind !== undefined ? { kind: q.kind } : {}),
          ...(q.severity !== undefined ? { severity: q.severity } : {}),
          ...(q.from !== undefined ? { from: q.from } : {}),
          ...(q.to !== undefined ? { to: q.to } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        });
      },
    );

    app.get(
      '/api/v1/alerts/stream',
      {
        config: READ,
        schema: {
          tags: ['alerts'],
          summary: 'Server-sent events: one event per alert transition',
          description:
            'Each event has `id` (sequence), `event` (opened|updated|acknowledged|resolved) and `data` (JSON: {seq, event, at, alert}). ' +
            'A comment line is sent every heartbeat interval. At most `alerts.stream.maxClients` concurrent streams (503 beyond). ' +
            'A client that reconnects with `Last-Event-ID` (EventSource does) first gets the transitions it missed, or an event `gap` ' +
            '(data: {lastEventId, message}) when some may be missing (older than the last `alerts.stream.replay` transitions, or from before a restart): then re-read `GET /api/v1/alerts`.',
          querystring: streamQuery,
          response: {
            200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } },
            503: errorSchema,
          },
        },
      },
      async (req, reply) => {
        if (streams.size >= engine.stream.maxClients) {
          engine.stream.rejected('too_many');
          throw new AlertError('TOO_MANY_STREAMS', `at most ${engine.stream.maxClients} alert streams may be open at once (alerts.stream.maxClients)`);
        }
        const { machine, kind } = req.query;
        const wanted = (e: { machine: string; kind: string }): boolean => (machine === undefined || e.machine === machine) && (kind === undefined || e.kind === kind);
        const header = req.headers['last-event-id'];
        const start = streamStart(engine.stream, typeof header === 'string' ? header.trim() : req.query.lastEventId, wanted);
        reply.hijack();
        const res = reply.raw;
        // Headers other hooks set (e.g. CORS) are kept: hijacking bypasses fastify's send.
        const inherited: Record<string, string | number | string[]> = {};
        for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) inherited[k] = v;
        res.writeHead(200, {
          ...inherited,
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
        });
        // The missed transitions and the subscription below run in the same turn: none falls between.
        res.write(start);
        let ended = false;
        const end = (): void => {
          if (ended) return;
          ended = true;
          clearInterval(heartbeat);
          unsubscribe();
          streams.delete(end);
          engine.stream.closed();
          if (!res.writableEnded) res.end();
        };
        const write = (chunk: string): void => {
          if (ended) return;
          if (res.writableLength > MAX_STREAM_BUFFER_BYTES) {
            engine.stream.rejected('slow_client');
            req.log.warn({ buffered: res.writableLength }, 'alert stream client is not reading; disconnecting it');
            end();
            res.destroy();
            return;
          }
          res.write(chunk);
        };
        const unsubscribe = engine.subscribe((t) => {
          if (!wanted(t.alert)) return;
          write(sseFrame(t, JSON.stringify(t)));
        });
        const heartbeat = setInterval(() => write(': heartbeat\n\n'), engine.stream.heartbeatMs);
        heartbeat.unref();
        streams.add(end);
        engine.stream.opened();
        res.on('close', end);
        res.on('error', end);
      },
    );

    app.get(
      '/api/v1/alerts/:id',
      {
        config: READ,
        schema: { tags: ['alerts'], summary: 'One alert', params: idParams, response: { 200: alertSchema, 400: errorSchema, 404: errorSchema } },
      },
      async (req) => {
        const a = engine.get(req.params.id);
        if (!a) throw new AlertError('ALERT_NOT_FOUND', `alert "${req.params.id}" does not exist`);
        return a;
      },
    );

    app.post(
      '/api/v1/alerts/:id/ack',
      {
        config: ACK,
        schema: {
          tags: ['alerts'],
          summary: 'Acknowledge an open alert',
          params: idParams,
          body: ackBody,
          response: { 200: alertSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
        },
      },
      async (req) => engine.ack(req.params.id, req.body),
    );

    app.post(
      '/api/v1/alerts/:id/resolve',
      {
        config: ACK,
        schema: {
          tags: ['alerts'],
          summary: 'Resolve an open or acknowledged alert by hand',
          params: idParams,
          body: resolveBody.nullish().describe('Optional; may be omitted.'),
          response: { 200: alertSchema, 400: errorSchema, 404: errorSchema, 409: errorSchema },
        },
      },
      async (req) => engine.resolve(req.params.id, req.body ?? {}),
    );
  };
  return plugin as FastifyPluginAsync;
}
