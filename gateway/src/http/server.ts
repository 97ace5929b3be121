/**
 * HTTP API (fastify + zod type provider): every input is validated by a zod schema, which also
 * feeds the OpenAPI document served at /docs (JSON at /docs/json).
 */
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { hasZodFastifySchemaValidationErrors, jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { matchToken } from '../auth/passwords.js';
import type { CoreMetrics } from '../obs/metrics.js';
import { STATUS_CODES } from 'node:http';
import { GatewayError } from '../errors.js';
import { publicMessage, sendError, type ApiErrorBody } from './errors.js';

export type Scope = 'read' | 'ack' | 'admin';

/** Scopes nest: admin can do everything ack can, ack everything read can (an HMI that acknowledges alerts must see them). */
const SCOPE_RANK: Record<Scope, number> = { read: 1, ack: 2, admin: 3 };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope a bearer token needs for this route when http.auth = token. */
    scope?: Scope;
  }
}

export interface HttpServerDeps {
  config: Config['http'];
  logger: Logger;
  metrics: CoreMetrics;
  version: string;
  /** Route plugins, registered in order. */
  routes: FastifyPluginAsync[];
}

export async function createHttpServer(deps: HttpServerDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger.child({ component: 'http' }),
    // Per-request logs would drown the interesting lines on a busy shop floor; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    // Bounded query strings: a fuzzer (or a typo) cannot make the parser work on megabytes.
    routerOptions: { maxParamLength: 200 },
    // Requests node's HTTP parser refuses (bad bytes in the request line, oversized headers, a
    // timeout) never reach fastify: answer them in the same JSON envelope, then close.
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      // A response to HEAD carries no body (RFC 9110 section 9.3.2), even an error. (node passes
      // the unparsed bytes as a Buffer, whatever fastify's type says.)
      const raw: unknown = err.rawPacket;
      const head = Buffer.isBuffer(raw) && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
      const [status, code, message] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'REQUEST_TIMEOUT', `request not complete within http.requestTimeoutMs`]
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'HEADERS_TOO_LARGE', 'request headers are too large']
            : [400, 'BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'}): check the URL and headers for characters that must be percent-encoded`];
      const body = JSON.stringify({ error: { code, message } } satisfies ApiErrorBody);
      // As node's own default (lib/_http_server.js socketOnError): write only when no response
      // is already on the wire; e.g. the unread rest of a body refused with 413 parses as garbage.
      const inFlight = (socket as typeof socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
      if (socket.writable && !socket.writableEnded && !inFlight?.headersSent) {
        socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`);
      }
      socket.destroy(err);
    },
    // Errors the router raises before any route runs (undecodable URL, over-long path parameter)
    // bypass setErrorHandler; without this they would answer in fastify's own envelope.
    frameworkErrors: (err, req, reply) => {
      const path = (req.raw.url ?? '').split('?')[0]?.slice(0, 100) ?? '';
      if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') return sendError(reply, 414, 'URI_TOO_LONG', `a path parameter in ${path} is longer than 200 characters`);
      if (err.code === 'FST_ERR_BAD_URL') return sendError(reply, 400, 'BAD_URL', `${path} is not a valid URL (bad percent-encoding?)`);
      req.log.error({ err }, 'request failed in the router');
      return sendError(reply, 500, 'INTERNAL', 'internal error (see gateway log)');
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // An empty body sent with `content-type: application/json` (curl -H without -d, clients that always
  // set the header) means no body, as an absent one does: an optional body may be left out either way,
  // and a route that needs one still answers 400 naming `body`. Anything else parses as before.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body: string, done) => {
    if (body.length === 0) return done(null, undefined);
    return parseJson(req, body, done);
  });

  app.setErrorHandler((err, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const v = err.validation[0];
      const where = `${err.validationContext ?? 'request'}${v?.instancePath ? v.instancePath.replace(/\//g, '.') : ''}`;
      return sendError(reply, 400, 'BAD_REQUEST', `${where}: ${v?.message ?? 'invalid input'}`);
    }
    const e = err as { statusCode?: number; code?: string; message: string };
    const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      // 503 (the gateway cannot take it now) and a GatewayError's 502 (a dependency such as InfluxDB
      // failed) carry messages written for the user; any other 5xx may be an unexpected exception
      // whose message holds internals.
      const forUser = status === 503 || (status === 502 && err instanceof GatewayError);
      return sendError(reply, status, e.code && !e.code.startsWith('FST_') ? e.code : 'INTERNAL', forUser ? publicMessage(e.message) : 'internal error (see gateway log)');
    }
    const code = status === 429 ? 'RATE_LIMITED' : e.code && !e.code.startsWith('FST_') ? e.code : status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST';
    return sendError(reply, status, code, e.message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));

  await app.register(rateLimit, {
    // Not per route (global: false) but as the first instance-level onRequest hook below, so it
    // runs before authentication (failed token guesses count too) and on unknown URLs (404 scans).
    global: false,
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    // Bounded memory: at most this many client addresses are tracked.
    cache: 10000,
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      code: 'RATE_LIMITED',
      // ctx.after is the time left until the window resets, not the window itself.
      message: `rate limit of ${ctx.max} requests per ${config.rateLimit.windowMs / 1000} s exceeded; retry in ${ctx.after}`,
    }),
  });
  app.addHook('onRequest', app.rateLimit());
  if (config.corsOrigins.length > 0) await app.register(cors, { origin: config.corsOrigins });

  await app.register(swagger, {
    openapi: {
      info: { title: 'smartops-gateway API', version: deps.version, description: 'Shop-floor edge gateway: machines, readings, alerts, anomaly scores.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  if (config.auth === 'token') {
    const hashes = config.tokens.map((t) => t.tokenHash);
    app.addHook('onRequest', async (req, reply) => {
      // Decide on the matched route, never on the raw URL: the router percent-decodes paths, so
      // `/%61pi/v1/machines` reaches the `/api/v1/machines` handler while not starting with `/api/`.
      const route = req.routeOptions.url;
      if (route === undefined) return; // no route matched: the 404 handler answers, nothing to protect
      const declared = req.routeOptions.config.scope;
      if (declared === undefined && !route.startsWith('/api/')) return; // /health, /ready, /metrics, /docs
      // An /api route that forgot to declare a scope needs admin: closed by default.
      const need: Scope = declared ?? 'admin';
      const h = req.headers.authorization;
      const m = typeof h === 'string' ? /^Bearer\s+(\S{1,512})$/i.exec(h) : null;
      if (!m) {
        deps.metrics.httpAuthFailures.inc({ reason: 'missing_token' });
        return sendError(reply.header('www-authenticate', 'Bearer'), 401, 'UNAUTHORIZED', 'missing bearer token: send Authorization: Bearer <token>');
      }
      const i = matchToken(m[1] as string, hashes);
      const tok = i >= 0 ? config.tokens[i] : undefined;
      if (!tok) {
        deps.metrics.httpAuthFailures.inc({ reason: 'bad_token' });
        return sendError(reply.header('www-authenticate', 'Bearer error="invalid_token"'), 401, 'UNAUTHORIZED', 'invalid bearer token');
      }
      if (!tok.scopes.some((have) => SCOPE_RANK[have] >= SCOPE_RANK[need])) {
        deps.metrics.httpAuthFailures.inc({ reason: 'missing_scope' });
        return sendError(reply, 403, 'FORBIDDEN', `token "${tok.name}" lacks the "${need}" scope`);
      }
      return undefined;
    });
  }

  // fastify answers HEAD by running the GET handler; a server-sent-events handler never ends, so
  // HEAD would hang and hold a stream slot. Answer it from the route's declared content type.
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'HEAD') return undefined;
    const ok = (req.routeOptions.schema?.response as Record<string, { content?: Record<string, unknown> } | undefined> | undefined)?.[200];
    if (!ok?.content?.['text/event-stream']) return undefined;
    return reply.code(200).header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').send();
  });

  for (const r of deps.routes) await app.register(r);
  return app as unknown as FastifyInstance;
}
