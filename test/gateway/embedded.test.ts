/** The foundation end to end on the embedded default: real MQTT clients over TCP, every HTTP route. */
import { createRequire } from 'node:module';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

interface ReadingsBody {
  machine: string;
  source: string;
  readings: { ts: number; time: string; metrics: Record<string, number> }[];
}

describe('gateway on the embedded store', () => {
  let gw: TestGateway;
  let client: mqtt.MqttClient;
  const t0 = Date.now() - 60_000;

  beforeAll(async () => {
    gw = await startTestGateway({ machines: { 'press-01': { site: 'plant-a', kind: 'press' } } });
    client = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'test-pub' });
  });
  afterAll(async () => {
    await client?.endAsync();
    await gw?.stop();
  });

  it('stores single and batch readings and serves them over HTTP', async () => {
    await client.publishAsync('machines/press-01/telemetry', JSON.stringify({ ts: t0, metrics: { temp_c: 41.5, rpm: 1200 }, seq: 1 }), { qos: 1 });
    await client.publishAsync(
      'machines/press-01/telemetry',
      JSON.stringify({ readings: [1, 2, 3].map((i) => ({ ts: t0 + i * 1000, metrics: { temp_c: 41.5 + i, rpm: 1200 + i } })) }),
      { qos: 1 },
    );
    await client.publishAsync('machines/lathe-02/telemetry', JSON.stringify({ metrics: { spindle_a: 3.25 } }), { qos: 0 });

    const r = await waitFor(async () => {
      const x = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings?order=asc`);
      return x.body.readings.length === 4 ? x : undefined;
    }, 5000, 'four readings');
    expect(r.status).toBe(200);
    expect(r.body.source).toBe('embedded');
    expect(r.body.readings.map((x) => x.ts)).toEqual([t0, t0 + 1000, t0 + 2000, t0 + 3000]);
    expect(r.body.readings.map((x) => x.metrics.temp_c)).toEqual([41.5, 42.5, 43.5, 44.5]);
    expect(r.body.readings[0]?.time).toBe(new Date(t0).toISOString());

    const desc = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings?limit=2`);
    expect(desc.body.readings.map((x) => x.ts)).toEqual([t0 + 3000, t0 + 2000]);
    const range = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings?from=${t0 + 1000}&to=${new Date(t0 + 2000).toISOString()}&metric=rpm`);
    expect(range.body.readings).toEqual([
      { ts: t0 + 2000, time: new Date(t0 + 2000).toISOString(), metrics: { rpm: 1202 } },
      { ts: t0 + 1000, time: new Date(t0 + 1000).toISOString(), metrics: { rpm: 1201 } },
    ]);

    const lathe = await waitFor(async () => {
      const x = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/lathe-02/readings`);
      return x.body.readings.length === 1 ? x : undefined;
    });
    // No ts: arrival time was used.
    expect(Math.abs((lathe.body.readings[0]?.ts ?? 0) - Date.now())).toBeLessThan(10_000);
    // The PUBACKs above were written without mqtt-packet's 65,536-entry packet-id cache (~7 MB kept for good).
    const numbers = createRequire(import.meta.url)('mqtt-packet/numbers.js') as { cache: Record<number, Buffer> };
    expect(Object.keys(numbers.cache)).toHaveLength(0);
  });

  it('lists machines with first/last time, counts, metric names and registry tags', async () => {
    const m = await waitFor(async () => {
      const x = await getJson<{ machines: { id: string; readings: number; firstTs: number; lastTs: number; metrics: string[]; site?: string; kind?: string }[] }>(`${gw.httpUrl}/api/v1/machines`);
      return x.body.machines.length === 2 ? x.body.machines : undefined;
    });
    const press = m.find((x) => x.id === 'press-01');
    expect(press).toMatchObject({ readings: 4, firstTs: t0, lastTs: t0 + 3000, metrics: ['rpm', 'temp_c'], site: 'plant-a', kind: 'press' });
    const one = await getJson<{ id: string }>(`${gw.httpUrl}/api/v1/machines/lathe-02`);
    expect(one.body.id).toBe('lathe-02');
    const none = await getJson<{ error: { code: string } }>(`${gw.httpUrl}/api/v1/machines/nope`);
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('MACHINE_NOT_FOUND');
  });

  it('rejects bad messages without stalling: counted by reason, listed, and the connection keeps working', async () => {
    await client.publishAsync('machines/press-01/telemetry', '{"metrics":{"temp_c":"hot"}}', { qos: 1 });
    await client.publishAsync('machines/press-01/telemetry', 'not json', { qos: 1 });
    await client.publishAsync('machines/bad id/telemetry', '{"metrics":{"a":1}}', { qos: 1 });
    await client.publishAsync('machines/press-01/telemetry', JSON.stringify({ ts: t0 + 9000, metrics: { temp_c: 50 } }), { qos: 1 });
    const rej = await getJson<{ rejects: { reason: string; topic: string; detail: string; clientId: string }[] }>(`${gw.httpUrl}/api/v1/rejects`);
    expect(rej.body.rejects.slice(0, 3).map((r) => r.reason)).toEqual(['bad_machine_id', 'invalid_json', 'invalid_schema']);
    expect(rej.body.rejects[2]?.detail).toContain('metrics.temp_c');
    expect(rej.body.rejects[2]?.clientId).toBe('test-pub');
    const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/smartops_messages_rejected_total\{reason="invalid_json"\} 1/);
    expect(metrics).toMatch(/smartops_messages_rejected_total\{reason="invalid_schema"\} 1/);
    expect(metrics).toMatch(/smartops_messages_rejected_total\{reason="bad_machine_id"\} 1/);
    expect(metrics).toMatch(/smartops_readings_accepted_total 6/);
    expect(metrics).toMatch(/smartops_mqtt_clients_connected 1/);
    await waitFor(async () => (await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/press-01/readings?limit=1`)).body.readings[0]?.metrics.temp_c === 50);
  });

  it('serves health, readiness, outbox, quarantine and the OpenAPI document', async () => {
    expect((await getJson<{ status: string }>(`${gw.httpUrl}/health`)).body.status).toBe('ok');
    const ready = await getJson<{ ready: boolean; checks: Record<string, { ok: boolean }> }>(`${gw.httpUrl}/ready`);
    expect(ready.status).toBe(200);
    expect(Object.keys(ready.body.checks).sort()).toEqual(['broker', 'outbox', 'sink']);
    const ob = await getJson<{ depth: number; maxBytes: number }>(`${gw.httpUrl}/api/v1/outbox`);
    expect(ob.body.maxBytes).toBe(gw.config.outbox.maxBytes);
    expect((await getJson<{ quarantined: unknown[] }>(`${gw.httpUrl}/api/v1/quarantine`)).body.quarantined).toEqual([]);
    const doc = await getJson<{ openapi: string; paths: Record<string, unknown> }>(`${gw.httpUrl}/docs/json`);
    expect(doc.body.openapi).toMatch(/^3\./);
    for (const p of ['/health', '/ready', '/metrics', '/api/v1/machines', '/api/v1/machines/{id}/readings', '/api/v1/rejects']) expect(doc.body.paths).toHaveProperty([p]);
  });

  it('counts readings that overwrite their predecessor (same ts, another value) and not those that merge or repeat', async () => {
    const overwritten = async (): Promise<number> => Number(/^smartops_readings_overwritten_total (\S+)$/m.exec(await fetch(`${gw.httpUrl}/metrics`).then((x) => x.text()))?.[1]);
    const before = await overwritten();
    const t = Date.now() - 30_000;
    // A device whose clock has whole seconds, sampling 4 times a second: 3 of 4 values are overwritten in storage.
    await client.publishAsync('machines/mill-09/telemetry', JSON.stringify({ readings: [1, 2, 3, 4].map((i) => ({ ts: t, metrics: { temp_c: 40 + i } })) }), { qos: 1 });
    // Other metrics at the same time merge; an identical resend changes nothing: neither counts.
    await client.publishAsync('machines/mill-09/telemetry', JSON.stringify({ ts: t, metrics: { rpm: 900 } }), { qos: 1 });
    await client.publishAsync('machines/mill-09/telemetry', JSON.stringify({ ts: t, metrics: { rpm: 900 } }), { qos: 1 });
    await waitFor(async () => (await overwritten()) - before === 3, 5000, 'three overwrites counted');
    const stored = await waitFor(async () => {
      const x = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/mill-09/readings`);
      return x.body.readings.length === 1 && x.body.readings[0]?.metrics.rpm === 900 ? x.body.readings : undefined;
    });
    // What storage kept: one point, the last temperature merged with the speed.
    expect(stored[0]?.metrics).toEqual({ temp_c: 44, rpm: 900 });
    expect(await overwritten()).toBe(before + 3);
  });

  it('answers bad HTTP input with 4xx JSON errors naming the parameter', async () => {
    const cases: [string, number, RegExp][] = [
      ['/api/v1/machines/press-01/readings?limit=0', 400, /limit/],
      ['/api/v1/machines/press-01/readings?limit=abc', 400, /limit/],
      ['/api/v1/machines/press-01/readings?from=yesterday', 400, /from/],
      ['/api/v1/machines/press-01/readings?metric=a%20b', 400, /metric/],
      ['/api/v1/machines/press-01/readings?bogus=1', 400, /bogus|Unrecognized|unrecognized/],
      [`/api/v1/machines/press-01/readings?from=${t0 + 10}&to=${t0}`, 400, /from is after to/],
      ['/api/v1/machines/bad%20id/readings', 400, /id/],
      ['/api/v1/nothing', 404, /no route/],
    ];
    for (const [url, status, msg] of cases) {
      const r = await getJson<{ error: { code: string; message: string } }>(`${gw.httpUrl}${url}`);
      expect(r.status, url).toBe(status);
      expect(r.body.error.message, url).toMatch(msg);
      expect(typeof r.body.error.code).toBe('string');
    }
  });
});
