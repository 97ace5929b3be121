/**
 * 5xx answers of the HTTP API: a dependency failing (GatewayError with 502, e.g. InfluxDB down) tells
 * the user what failed, with no credentials in it; an unexpected exception stays "internal error".
 * First over the real gateway with InfluxDB on a closed port, then through the real HTTP server
 * (createHttpServer) with test-only routes that throw each kind of error.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../gateway/src/config/schema.js';
import { ErrorCodes, GatewayError } from '../../gateway/src/errors.js';
import { createHttpServer } from '../../gateway/src/http/server.js';
import { createCoreMetrics, createRegistry } from '../../gateway/src/obs/metrics.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';

interface ErrorBody {
  error: { code: string; message: string };
}

const PASSWORD = 'pw-not-for-http-7f3a';

describe('readings while InfluxDB is unreachable', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    // Nothing listens on a port just released by the OS: every request is refused.
    const port = await freePort();
    gw = await startTestGateway({ influx: { url: `http://127.0.0.1:${port}`, database: 'shop', username: 'gateway', password: PASSWORD } });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('answers 502 SMARTOPS_SINK_QUERY with the cause, and no password', async () => {
    expect(gw.gateway.sinkType).toBe('influxdb-v1');
    const r = await getJson<ErrorBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings`);
    expect(r.status).toBe(502);
    expect(r.body.error.code).toBe('SMARTOPS_SINK_QUERY');
    expect(r.body.error.message).toMatch(/^InfluxDB query failed: .*ECONNREFUSED 127\.0\.0\.1:\d+/);
    expect(JSON.stringify(r.body)).not.toContain(PASSWORD);
    // Right after a failure the influx client rests the host and would say only "No host available":
    // the answer names the server instead.
    const again = await getJson<ErrorBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings`);
    expect(again.status).toBe(502);
    expect(again.body.error.message).toMatch(/^InfluxDB query failed: (.*ECONNREFUSED 127\.0\.0\.1:\d+|InfluxDB at http:\/\/127\.0\.0\.1:\d+ unreachable)/);
    expect(again.body.error.message).not.toContain('No host available');
  });
});

describe('5xx messages through the HTTP server', () => {
  let app: FastifyInstance;
  let url: string;

  const routes: FastifyPluginAsync = async (fastify) => {
    fastify.get('/api/v1/upstream', async () => {
      throw new GatewayError(ErrorCodes.SINK_QUERY, 'InfluxDB query failed: request to http://gateway:hunter2@influx.local:8086/query?db=shop failed, see https://user@example.com/x', 502);
    });
    fastify.get('/api/v1/upstream-long', async () => {
      throw new GatewayError(ErrorCodes.SINK_QUERY, `InfluxDB query failed: A 404 Not Found error occurred: <html>${'x'.repeat(5000)}</html>`, 502);
    });
    fastify.get('/api/v1/gateway-500', async () => {
      throw new GatewayError('SMARTOPS_SOMETHING', 'cannot read /etc/smartops/secret.key', 500);
    });
    fastify.get('/api/v1/plain-502', async () => {
      // Not a GatewayError: nobody wrote this message for a user.
      throw Object.assign(new Error('upstream said: token=abc123'), { statusCode: 502 });
    });
    fastify.get('/api/v1/crash', async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'password')");
    });
  };

  beforeAll(async () => {
    const base = configSchema.parse({}).http;
    app = await createHttpServer({ config: base, logger: pino({ level: 'silent' }), metrics: createCoreMetrics(createRegistry()), version: 'test', routes: [routes] });
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('passes the message of a 502 GatewayError through, with userinfo removed from URLs', async () => {
    const r = await getJson<ErrorBody>(`${url}/api/v1/upstream`);
    expect(r.status).toBe(502);
    expect(r.body.error).toEqual({
      code: 'SMARTOPS_SINK_QUERY',
      message: 'InfluxDB query failed: request to http://influx.local:8086/query?db=shop failed, see https://example.com/x',
    });
  });

  it('bounds a passed-through message (an upstream body can be a whole HTML page)', async () => {
    const r = await getJson<ErrorBody>(`${url}/api/v1/upstream-long`);
    expect(r.status).toBe(502);
    expect(r.body.error.message).toMatch(/^InfluxDB query failed: A 404 Not Found error occurred: <html>x+/);
    expect(r.body.error.message.length).toBeLessThanOrEqual(520);
  });

  it('keeps the generic message for 500s and for 502s that are not GatewayErrors', async () => {
    for (const [path, status, code] of [
      ['/api/v1/gateway-500', 500, 'SMARTOPS_SOMETHING'],
      ['/api/v1/plain-502', 502, 'INTERNAL'],
      ['/api/v1/crash', 500, 'INTERNAL'],
    ] as const) {
      const r = await getJson<ErrorBody>(`${url}${path}`);
      expect(r.status, path).toBe(status);
      expect(r.body.error, path).toEqual({ code, message: 'internal error (see gateway log)' });
    }
  });
});
