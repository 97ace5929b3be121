/**
 * HTTP API security: bearer tokens with scopes, refusals counted, no path-encoding bypass, rate
 * limiting that also counts failed token guesses, request size limits, CORS off by default.
 * The HTTP server is the real one (createHttpServer) with test-only routes where the behaviour
 * must not depend on which feature routes exist; the last block uses the real alerts ack route.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hashToken, matchToken, newToken } from '../../gateway/src/auth/passwords.js';
import { configSchema, type Config } from '../../gateway/src/config/schema.js';
import { createHttpServer } from '../../gateway/src/http/server.js';
import { createCoreMetrics, createRegistry } from '../../gateway/src/obs/metrics.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { sample, scrape } from './helpers.js';

const TOKENS = { reader: 'reader-token-abcdefghijklmnop', acker: 'acker-token-abcdefghijklmnop', admin: 'admin-token-abcdefghijklmnop' };

/** Test-only routes: one per scope, one that forgot to declare a scope, one outside /api. */
const testRoutes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  app.get('/api/v1/things', { config: { scope: 'read' } }, async () => ({ things: [] }));
  app.post(
    '/api/v1/things/:id/ack',
    { config: { scope: 'ack' }, schema: { params: z.object({ id: z.string().max(64) }), body: z.strictObject({ by: z.string().max(64), note: z.string().max(100_000).optional() }) } },
    async (req) => ({ acked: req.params.id, by: req.body.by }),
  );
  app.get('/api/v1/undeclared', async () => ({ secret: true }));
  app.get('/open/thing', async () => ({ open: true }));
};

async function server(http: Partial<Config['http']>): Promise<{ app: FastifyInstance; url: string; metrics: ReturnType<typeof createCoreMetrics> }> {
  const base = configSchema.parse({}).http;
  const metrics = createCoreMetrics(createRegistry());
  const app = await createHttpServer({ config: { ...base, ...http }, logger: pino({ level: 'silent' }), metrics, version: 'test', routes: [testRoutes] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, metrics };
}

const tokenConfig: Partial<Config['http']> = {
  auth: 'token',
  tokens: [
    { name: 'reader', tokenHash: hashToken(TOKENS.reader), scopes: ['read'] },
    { name: 'hmi', tokenHash: hashToken(TOKENS.acker), scopes: ['ack'] },
    { name: 'ops', tokenHash: hashToken(TOKENS.admin), scopes: ['admin'] },
  ],
};

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
const ackBody = JSON.stringify({ by: 'alice' });
const json = { 'content-type': 'application/json' };

async function failures(metrics: ReturnType<typeof createCoreMetrics>, reason: string): Promise<number> {
  return (await metrics.httpAuthFailures.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('bearer tokens and scopes', () => {
  let s: Awaited<ReturnType<typeof server>>;
  beforeAll(async () => {
    s = await server(tokenConfig);
  });
  afterAll(async () => {
    await s?.app.close();
  });

  it('refuses a missing or unknown token with 401 and a WWW-Authenticate challenge, counted by reason', async () => {
    const a = await fetch(`${s.url}/api/v1/things`);
    expect(a.status).toBe(401);
    expect(a.headers.get('www-authenticate')).toBe('Bearer');
    expect(((await a.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    for (const h of [bearer('not-a-token'), bearer(`${TOKENS.reader}x`), { authorization: `Basic ${Buffer.from('reader:x').toString('base64')}` }, { authorization: TOKENS.reader }]) {
      const r = await fetch(`${s.url}/api/v1/things`, { headers: h });
      expect(r.status).toBe(401);
    }
    // The token in the query string is not a way in.
    expect((await fetch(`${s.url}/api/v1/things?access_token=${TOKENS.reader}`)).status).toBe(401);
    expect(await failures(s.metrics, 'missing_token')).toBe(4);
    expect(await failures(s.metrics, 'bad_token')).toBe(2);
  });

  it('a token without the ack scope cannot acknowledge (403, counted); ack and admin can', async () => {
    const before = await failures(s.metrics, 'missing_scope');
    const r = await getJson<{ error: { code: string; message: string } }>(`${s.url}/api/v1/things/a1/ack`, { method: 'POST', headers: { ...bearer(TOKENS.reader), ...json }, body: ackBody });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('FORBIDDEN');
    expect(r.body.error.message).toContain('"ack"');
    expect(await failures(s.metrics, 'missing_scope')).toBe(before + 1);
    for (const t of [TOKENS.acker, TOKENS.admin]) {
      const ok = await getJson<{ acked: string }>(`${s.url}/api/v1/things/a1/ack`, { method: 'POST', headers: { ...bearer(t), ...json }, body: ackBody });
      expect(ok.status).toBe(200);
      expect(ok.body.acked).toBe('a1');
    }
  });

  it('scopes nest: read < ack < admin', async () => {
    for (const t of Object.values(TOKENS)) expect((await fetch(`${s.url}/api/v1/things`, { headers: bearer(t) })).status).toBe(200);
    // Scheme is case-insensitive (RFC 9110 section 11.1).
    expect((await fetch(`${s.url}/api/v1/things`, { headers: { authorization: `bearer ${TOKENS.reader}` } })).status).toBe(200);
  });

  it('an /api route that declares no scope needs admin (closed by default); routes outside /api stay open', async () => {
    expect((await fetch(`${s.url}/api/v1/undeclared`, { headers: bearer(TOKENS.acker) })).status).toBe(403);
    expect((await fetch(`${s.url}/api/v1/undeclared`, { headers: bearer(TOKENS.admin) })).status).toBe(200);
    expect((await fetch(`${s.url}/open/thing`)).status).toBe(200);
    expect((await fetch(`${s.url}/docs/json`)).status).toBe(200);
  });

  it('percent-encoding the path does not get around authentication', async () => {
    for (const p of ['/%61pi/v1/things', '/api/v1/%74hings', '/%61%70%69/v1/things', '/api/v1/things/', '/api/v1/things?', '/api//v1/things', '/api/v1/./things', '/API/v1/things']) {
      const r = await fetch(`${s.url}${p}`);
      expect([401, 404], p).toContain(r.status);
      const body = (await r.json()) as { error: { code: string } };
      expect(body.error.code).toMatch(/UNAUTHORIZED|NOT_FOUND/);
    }
  });

  it('refuses a body over http.bodyLimitBytes with 413 JSON, but only after authentication', async () => {
    const big = JSON.stringify({ by: 'alice', note: 'x'.repeat(70_000) });
    const anon = await getJson<{ error: { code: string } }>(`${s.url}/api/v1/things/a1/ack`, { method: 'POST', headers: json, body: big });
    expect(anon.status).toBe(401);
    const r = await getJson<{ error: { code: string; message: string } }>(`${s.url}/api/v1/things/a1/ack`, { method: 'POST', headers: { ...bearer(TOKENS.admin), ...json }, body: big });
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    const wrongType = await getJson<{ error: { code: string } }>(`${s.url}/api/v1/things/a1/ack`, { method: 'POST', headers: { ...bearer(TOKENS.admin), 'content-type': 'text/xml' }, body: '<a/>' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('matchToken finds the token among many and never matches a near miss', () => {
    const tokens = Array.from({ length: 50 }, () => newToken());
    const hashes = tokens.map(hashToken);
    tokens.forEach((t, i) => expect(matchToken(t, hashes)).toBe(i));
    expect(matchToken(`${tokens[0]}x`, hashes)).toBe(-1);
    expect(matchToken('', hashes)).toBe(-1);
    expect(matchToken(tokens[0] as string, ['sha256:short', ...hashes])).toBe(1);
  });
});

describe('rate limiting', () => {
  it('answers 429 JSON with Retry-After beyond http.rateLimit.max, and failed token guesses count too', async () => {
    const s = await server({ ...tokenConfig, rateLimit: { max: 5, windowMs: 60_000 } });
    try {
      for (let i = 0; i < 5; i++) expect((await fetch(`${s.url}/api/v1/things`, { headers: bearer(`guess-${i}`) })).status).toBe(401);
      // The right token now: still refused, the guesses used up the allowance.
      const r = await fetch(`${s.url}/api/v1/things`, { headers: bearer(TOKENS.reader) });
      expect(r.status).toBe(429);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('RATE_LIMITED');
      // The window as configured, and the wait (the window's remaining time) apart from it.
      expect(body.error.message).toMatch(/^rate limit of 5 requests per 60 s exceeded; retry in \d+ (seconds?|minutes?)$/);
      // Unknown URLs are limited as well (no free scanning).
      expect((await fetch(`${s.url}/nothing-here`)).status).toBe(429);
    } finally {
      await s.app.close();
    }
  });
});

describe('CORS', () => {
  it('is off by default: no Access-Control-Allow-Origin, whatever the Origin', async () => {
    const s = await server({});
    try {
      const r = await fetch(`${s.url}/open/thing`, { headers: { origin: 'https://evil.example' } });
      expect(r.status).toBe(200);
      expect(r.headers.get('access-control-allow-origin')).toBeNull();
      const pre = await fetch(`${s.url}/api/v1/things`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
      expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await s.app.close();
    }
  });

  it('answers only the configured origins', async () => {
    const s = await server({ ...tokenConfig, corsOrigins: ['https://hmi.plant.example'] });
    try {
      const ok = await fetch(`${s.url}/api/v1/things`, { headers: { origin: 'https://hmi.plant.example', ...bearer(TOKENS.reader) } });
      expect(ok.headers.get('access-control-allow-origin')).toBe('https://hmi.plant.example');
      const other = await fetch(`${s.url}/api/v1/things`, { headers: { origin: 'https://evil.example', ...bearer(TOKENS.reader) } });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      // A preflight carries no credentials; it must still be answered for the allowed origin.
      const pre = await fetch(`${s.url}/api/v1/things/a1/ack`, {
        method: 'OPTIONS',
        headers: { origin: 'https://hmi.plant.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
      });
      expect(pre.status).toBeLessThan(300);
      expect(pre.headers.get('access-control-allow-origin')).toBe('https://hmi.plant.example');
    } finally {
      await s.app.close();
    }
  });
});

describe('the real gateway: acknowledging an alert needs the ack scope', () => {
  let gw: TestGateway;
  let ackRoute: string | undefined;
  beforeAll(async () => {
    gw = await startTestGateway({ http: tokenConfig });
    const doc = await getJson<{ paths: Record<string, { post?: { parameters?: unknown[] } }> }>(`${gw.httpUrl}/docs/json`);
    ackRoute = Object.keys(doc.body.paths).find((p) => /\/alerts\/\{id\}\/ack$/.test(p));
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('read token: 403 counted in smartops_http_auth_failures_total; ack token: past authentication', async (ctx) => {
    if (!ackRoute) {
      process.stderr.write('*** no alerts ack route in /docs/json: the real-route scope check is skipped (the test-only route above covers the rule) ***\n');
      ctx.skip();
      return;
    }
    const url = `${gw.httpUrl}${ackRoute.replace('{id}', 'no-such-alert')}`;
    const before = await scrape(gw.httpUrl);
    const denied = await getJson<{ error: { code: string } }>(url, { method: 'POST', headers: { ...bearer(TOKENS.reader), ...json }, body: '{}' });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('FORBIDDEN');
    const after = await scrape(gw.httpUrl);
    expect(sample(after, 'smartops_http_auth_failures_total', { reason: 'missing_scope' }) - sample(before, 'smartops_http_auth_failures_total', { reason: 'missing_scope' })).toBe(1);
    const allowed = await getJson<{ error?: { code: string } }>(url, { method: 'POST', headers: { ...bearer(TOKENS.acker), ...json }, body: '{}' });
    expect([200, 400, 404, 409]).toContain(allowed.status);
    expect(allowed.body.error?.code).not.toBe('FORBIDDEN');
    expect((await fetch(url, { method: 'POST', headers: json, body: '{}' })).status).toBe(401);
  });
});
