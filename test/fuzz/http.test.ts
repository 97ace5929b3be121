/**
 * HTTP fuzzing of every route in the gateway's own OpenAPI document (/docs/json), so routes added
 * later are covered without touching this file: random path parameters, query strings and bodies
 * (JSON, garbage, wrong content types) must get a 2xx, or a 4xx with the JSON error envelope
 * `{error:{code,message}}`, never a 5xx. The one designed exception is GET /ready answering 503
 * with its check list when the gateway is not ready.
 */
import fc from 'fast-check';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../gateway/src/auth/passwords.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const RUNS_PER_ROUTE = Number(process.env.FUZZ_HTTP_RUNS ?? 60);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

interface OpenApiParam {
  name: string;
  in: 'path' | 'query' | 'header';
}
interface OpenApiDoc {
  paths: Record<string, Partial<Record<(typeof METHODS)[number], { parameters?: OpenApiParam[]; requestBody?: unknown }>>>;
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw request: the path goes on the wire as given (no URL normalisation by a client library). */
function raw(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Reply | undefined> {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = request({ host: '127.0.0.1', port, method: method.toUpperCase(), path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
        // A stream that stays open by design (server-sent events): its status line is the answer.
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          resolve({ status: res.statusCode ?? 0, body: '', headers: res.headers });
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      });
    } catch {
      // node refuses to send it (e.g. a control character in the path): not a server concern
      resolve(undefined);
      return;
    }
    req.on('error', reject);
    // A request the server never answers is a finding too (a hung handler), not a test timeout.
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer within 10 s: ${method.toUpperCase()} ${path.slice(0, 200)}`)));
    req.end(body);
  });
}

const paramValueArb: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
  fc.constantFrom('', '0', '-1', '1e309', 'NaN', 'Infinity', '99999999999999999999999999999999999999', '9007199254740993', '2026-01-01T00:00:00Z', '2026-13-99', 'null', 'true', '[]', '{}', 'asc', 'desc', '..', '.', '%', '%zz', '%00', '%2F', '\u00e9', '🔥', "' OR 1=1 --", '"; DROP MEASUREMENT telemetry', 'a,b=c d', '\\', '<script>'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.nat({ max: 300 }).map((n) => 'x'.repeat(n)),
  fc.integer().map(String),
  fc.double().map(String),
);

/** Percent-encode, sometimes leave raw (only what node lets onto the wire reaches the server). */
const encodeArb = (v: string): fc.Arbitrary<string> => fc.constantFrom(encodeURIComponent(v), v.replace(/[\s#?&/]/g, (c) => encodeURIComponent(c)));

function queryArb(declared: string[]): fc.Arbitrary<string> {
  const name = fc.oneof(fc.constantFrom(...(declared.length ? declared : ['limit'])), fc.constantFrom('__proto__', 'constructor', 'a[b]', 'x', ''), fc.string({ maxLength: 8 }));
  const pair = fc.tuple(name, paramValueArb).chain(([k, v]) => encodeArb(v).map((ev) => `${encodeURIComponent(k)}=${ev}`));
  return fc.oneof(
    { weight: 5, arbitrary: fc.array(pair, { maxLength: 6 }).map((ps) => ps.join('&')) },
    fc.constantFrom('', '&&&', '=', '==', 'a', '%', '%%', 'limit', 'limit=&limit=', 'metric=a&metric=b&metric=', `from=${'9'.repeat(40)}`, 'limit=1&limit=2', `metric=${Array.from({ length: 100 }, (_, i) => `m${i}`).join(',')}`),
    fc.nat({ max: 5000 }).map((n) => `x=${'a'.repeat(n)}`),
  );
}

const bodyArb: fc.Arbitrary<{ body?: Buffer; type?: string }> = fc.oneof(
  fc.constant({}),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ body: Buffer.from(JSON.stringify(v) ?? 'null'), type: 'application/json' })),
  fc.record({ state: fc.constantFrom('acknowledged', 'resolved', 'open', '', 'x'), by: paramValueArb, note: paramValueArb, comment: paramValueArb }, { requiredKeys: [] }).map((v) => ({ body: Buffer.from(JSON.stringify(v)), type: 'application/json' })),
  fc.uint8Array({ maxLength: 300 }).map((u) => ({ body: Buffer.from(u), type: 'application/json' })),
  fc.constantFrom('', '{', '{"a":', '[', 'null', '"str"', '1e999', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}').map((s) => ({ body: Buffer.from(s), type: 'application/json' })),
  fc.string({ maxLength: 100 }).map((s) => ({ body: Buffer.from(s), type: fc.sample(fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json; charset=latin1', 'application/json;;', '*/*'), 1)[0] })),
  fc.constant({ body: Buffer.alloc(200 * 1024, 0x7b), type: 'application/json' }),
);

async function fuzzRoutes(gw: TestGateway, headersArb: fc.Arbitrary<Record<string, string>>): Promise<{ requests: number; statuses: Record<number, number> }> {
  const port = gw.gateway.httpPort;
  const doc = JSON.parse((await raw(port, 'get', '/docs/json'))?.body ?? '{}') as OpenApiDoc;
  const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([m]) => (METHODS as readonly string[]).includes(m)).map(([method, op]) => ({ path, method, op })));
  expect(routes.length).toBeGreaterThan(5);
  const statuses: Record<number, number> = {};
  let requests = 0;
  for (const { path, method, op } of routes) {
    const pathParams = (op?.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
    const queryParams = (op?.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    const caseArb = fc.record({
      params: fc.array(paramValueArb.chain(encodeArb), { minLength: pathParams.length, maxLength: pathParams.length }),
      query: queryArb(queryParams),
      method: fc.oneof({ weight: 4, arbitrary: fc.constant(method) }, fc.constantFrom(...METHODS, 'head', 'options')),
      body: bodyArb,
      headers: headersArb,
    });
    const cases = fc.sample(caseArb, { numRuns: RUNS_PER_ROUTE, seed: Number(process.env.FUZZ_SEED ?? 7) });
    for (const c of cases) {
      let p = path;
      pathParams.forEach((name, i) => {
        p = p.replace(`{${name}}`, c.params[i] || 'x');
      });
      const url = `${p}${c.query ? `?${c.query}` : ''}`;
      const sendBody = c.method !== 'get' && c.method !== 'head' ? c.body.body : undefined;
      const headers: Record<string, string> = { ...c.headers, ...(sendBody && c.body.type ? { 'content-type': c.body.type } : {}) };
      const res = await raw(port, c.method, url, sendBody, headers);
      if (!res) continue;
      requests++;
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const what = `${c.method.toUpperCase()} ${url.slice(0, 200)} -> ${res.status} ${res.body.slice(0, 300)}`;
      if (res.status === 503 && path === '/ready') {
        expect(JSON.parse(res.body), what).toHaveProperty('checks');
        continue;
      }
      expect(res.status, what).toBeLessThan(500);
      if (res.status >= 400 && c.method !== 'head') {
        expect(String(res.headers['content-type']), what).toMatch(/^application\/json/);
        const body = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
        expect(typeof body.error?.code, what).toBe('string');
        expect(typeof body.error?.message, what).toBe('string');
      }
    }
  }
  return { requests, statuses };
}

describe('HTTP fuzzing of every documented route', () => {
  let open: TestGateway;
  let guarded: TestGateway;

  beforeAll(async () => {
    [open, guarded] = await Promise.all([
      startTestGateway({ http: { rateLimit: { max: 1_000_000 } } }),
      startTestGateway({
        http: {
          rateLimit: { max: 1_000_000 },
          auth: 'token',
          tokens: [
            { name: 'reader', tokenHash: hashToken('reader-token-0123456789'), scopes: ['read'] },
            { name: 'acker', tokenHash: hashToken('acker-token-0123456789'), scopes: ['ack'] },
          ],
        },
      }),
    ]);
    // Some data, so handlers have rows to work on.
    const mqtt = await import('mqtt');
    for (const gw of [open, guarded]) {
      const c = await mqtt.default.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
      for (let i = 0; i < 20; i++) await c.publishAsync(`machines/${i % 2 ? 'x' : 'press-01'}/telemetry`, JSON.stringify({ ts: Date.now() - i * 1000, metrics: { a: i, b: -i } }), { qos: 1 });
      await c.publishAsync('machines/press-01/telemetry', 'bad', { qos: 1 });
      await c.endAsync();
    }
  });
  afterAll(async () => {
    await Promise.all([open?.stop(), guarded?.stop()]);
  });

  it('no auth: 2xx or a JSON 4xx, never 5xx', async () => {
    const r = await fuzzRoutes(open, fc.constant({}));
    expect(r.requests).toBeGreaterThan(100);
    // The fuzzer reached the handlers, not only the validators.
    expect(r.statuses[200] ?? 0).toBeGreaterThan(10);
    expect(r.statuses[400] ?? 0).toBeGreaterThan(10);
  });

  it('token auth with random Authorization headers: 2xx or a JSON 4xx, never 5xx', async () => {
    const authArb = fc.oneof(
      fc.constant({}),
      fc.constantFrom('Bearer reader-token-0123456789', 'Bearer acker-token-0123456789', 'bearer reader-token-0123456789', 'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'Bearer a b', `Bearer ${'x'.repeat(600)}`, 'Bearer reader-token-012345678').map((a) => ({ authorization: a })),
      fc.string({ maxLength: 40 }).filter((s) => !/[\r\n\0]/.test(s) && /^[\x20-\x7e]*$/.test(s)).map((s) => ({ authorization: `Bearer ${s}` })),
    );
    const r = await fuzzRoutes(guarded, authArb);
    expect(r.requests).toBeGreaterThan(100);
    expect(r.statuses[401] ?? 0).toBeGreaterThan(5);
  });
});
