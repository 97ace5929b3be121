/**
 * Hostile payloads through the real gateway over MQTT/TCP (mqtt.js and raw sockets): nothing
 * crashes, memory stays bounded, every reject is counted with its reason in /metrics, and valid
 * readings published in the same run all land.
 */
import fc from 'fast-check';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTelemetry, type RejectReason } from '../../gateway/src/contract/reading.js';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { byLabel, mqttPackets, rawConnect, sample, scrape, total } from '../security/helpers.js';
import { hostilePayloadArb, topicArb } from './arbitraries.js';

const MESSAGES = Number(process.env.FUZZ_MQTT_MESSAGES ?? 600);
const MB = 1024 * 1024;

/** What the gateway should do with a message, by the same validator it runs (a throw counts as internal_error). */
function expected(topic: string, payload: Buffer, now: number, limits: TestGateway['config']['ingest']): { reason?: RejectReason; readings: number } {
  try {
    const r = parseTelemetry(topic, payload, now, limits);
    return r.ok ? { readings: r.readings.length } : { reason: r.reason, readings: 0 };
  } catch {
    return { reason: 'internal_error', readings: 0 };
  }
}

describe('MQTT payload fuzzing against a running gateway', () => {
  let gw: TestGateway;
  let port: number;

  beforeAll(async () => {
    gw = await startTestGateway({ ingest: { rejectsKept: 50 } });
    port = gw.gateway.mqttPort;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('counts every hostile message by reason while interleaved valid readings all land', async () => {
    const before = await scrape(gw.httpUrl);
    const now = Date.now();
    const msgs = fc.sample(fc.tuple(topicArb, hostilePayloadArb(now)), { numRuns: MESSAGES, seed: Number(process.env.FUZZ_SEED ?? 4242) });
    const hostile = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'fuzzer', reconnectPeriod: 0 });
    const honest = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'honest', reconnectPeriod: 0 });
    const want: Record<string, number> = {};
    let wantReadings = 0;
    let honestSent = 0;
    const t0 = now - 600_000;
    for (let i = 0; i < msgs.length; i++) {
      const [topic, payload] = msgs[i] as [string, Buffer];
      const e = expected(topic, payload, Date.now(), gw.config.ingest);
      if (e.reason) want[e.reason] = (want[e.reason] ?? 0) + 1;
      wantReadings += e.readings;
      // QoS 1: the PUBACK comes after the gateway has decided, so counters are final afterwards.
      await hostile.publishAsync(topic, payload, { qos: 1 });
      if (i % 3 === 0) {
        await honest.publishAsync('machines/fuzz-valid/telemetry', JSON.stringify({ ts: t0 + honestSent, metrics: { temp_c: 20 + (honestSent % 7), rpm: honestSent } }), { qos: 1 });
        honestSent++;
      }
    }
    expect(hostile.connected).toBe(true);
    expect(honest.connected).toBe(true);
    await hostile.endAsync();
    await honest.endAsync();

    const after = await scrape(gw.httpUrl);
    const got = byLabel(after, 'smartops_messages_rejected_total', 'reason');
    const gotDelta: Record<string, number> = {};
    for (const [r, n] of Object.entries(got)) {
      const d = n - sample(before, 'smartops_messages_rejected_total', { reason: r });
      if (d) gotDelta[r] = d;
    }
    // Every reject counted, by the right reason; nothing rejected that the contract accepts.
    expect(gotDelta).toEqual(want);
    expect(total(after, 'smartops_mqtt_messages_received_total') - total(before, 'smartops_mqtt_messages_received_total')).toBe(MESSAGES + honestSent);
    expect(sample(after, 'smartops_readings_accepted_total') - sample(before, 'smartops_readings_accepted_total')).toBe(wantReadings + honestSent);
    // Several reasons were exercised, not just one.
    expect(Object.keys(want).length).toBeGreaterThanOrEqual(8);

    // The honest machine's readings all reached the store.
    const stored = await waitFor(async () => {
      const r = await getJson<{ readings: unknown[] }>(`${gw.httpUrl}/api/v1/machines/fuzz-valid/readings?limit=10000`);
      return r.body.readings.length === honestSent ? r.body.readings : undefined;
    }, 15000, `${honestSent} honest readings in the store`);
    expect(stored).toHaveLength(honestSent);

    // The reject list stays bounded (ingest.rejectsKept) and names each reason.
    const rejects = await getJson<{ rejects: { reason: string; detail: string }[] }>(`${gw.httpUrl}/api/v1/rejects?limit=1000`);
    expect(rejects.body.rejects.length).toBeLessThanOrEqual(50);
    for (const r of rejects.body.rejects) expect(r.detail.length).toBeLessThanOrEqual(310);
  });

  it('refuses a 10 MB packet from its header, without reading the body, and counts it', async () => {
    const before = await scrape(gw.httpUrl);
    const c = rawConnect(port, 'big-raw');
    expect(await c.connack).toBe(0);
    // Declare a 10 MB PUBLISH but send only the header and the first 64 KiB: the gateway must
    // close the connection without waiting for (or buffering) the rest.
    c.socket.write(mqttPackets.publishHeader('machines/big-01/telemetry', 10 * MB));
    c.socket.write(Buffer.alloc(64 * 1024, 0x20));
    await c.closed;
    const after = await waitFor(async () => {
      const s = await scrape(gw.httpUrl);
      return sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' }) > sample(before, 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' }) ? s : undefined;
    });
    expect(sample(after, 'smartops_messages_rejected_total', { reason: 'payload_too_large' }) - sample(before, 'smartops_messages_rejected_total', { reason: 'payload_too_large' })).toBe(1);
    const rejects = await getJson<{ rejects: { reason: string; topic: string; payloadBytes: number }[] }>(`${gw.httpUrl}/api/v1/rejects?limit=1`);
    expect(rejects.body.rejects[0]).toMatchObject({ reason: 'payload_too_large', topic: 'machines/big-01/telemetry' });
    expect(rejects.body.rejects[0]?.payloadBytes).toBeGreaterThan(10 * MB);
  });

  it('a payload just over ingest.maxPayloadBytes (within the packet slack) is acknowledged and counted', async () => {
    const before = await scrape(gw.httpUrl);
    const c = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'just-over', reconnectPeriod: 0 });
    await c.publishAsync('machines/big-02/telemetry', Buffer.alloc(gw.config.ingest.maxPayloadBytes + 1, 0x20), { qos: 1 });
    expect(c.connected).toBe(true);
    await c.endAsync();
    const after = await scrape(gw.httpUrl);
    expect(sample(after, 'smartops_messages_rejected_total', { reason: 'payload_too_large' }) - sample(before, 'smartops_messages_rejected_total', { reason: 'payload_too_large' })).toBe(1);
  });

  it('20 concurrent 10 MB publishes (mqtt.js and raw) leave memory bounded and other clients working', async () => {
    const honest = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'bystander', reconnectPeriod: 0 });
    const big = Buffer.alloc(10 * MB, 0x31);
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const raws = Array.from({ length: 15 }, (_, i) => {
      const c = rawConnect(port, `big-${i}`);
      void c.connack.then(() => {
        c.socket.write(mqttPackets.publishHeader('machines/big-03/telemetry', big.length));
        c.socket.write(big);
      });
      return c.closed;
    });
    const libs = Array.from({ length: 5 }, async (_, i) => {
      const c = await mqtt.connectAsync(gw.mqttUrl, { clientId: `big-lib-${i}`, reconnectPeriod: 0 });
      const closed = new Promise<void>((r) => c.once('close', () => r()));
      c.publish('machines/big-04/telemetry', big, { qos: 1 }, () => undefined);
      await closed;
      c.end(true);
    });
    await Promise.all([...raws, ...libs]);
    // The bystander was never disturbed.
    await honest.publishAsync('machines/bystander/telemetry', JSON.stringify({ metrics: { ok: 1 } }), { qos: 1 });
    expect(honest.connected).toBe(true);
    await honest.endAsync();
    clearInterval(sampler);
    // Without the guard each connection would buffer its full 10 MB packet (200 MB in all) before
    // ingest could refuse it. Generous bound: the test process also holds the clients' buffers.
    expect(peak - rss0).toBeLessThan(150 * MB);
    const s = await scrape(gw.httpUrl);
    expect(sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' })).toBeGreaterThanOrEqual(21);
    // The gateway still answers.
    expect((await getJson(`${gw.httpUrl}/health`)).status).toBe(200);
  });

  it('a truncated packet followed by silence, and garbage instead of MQTT, cost one connection each and nothing more', async () => {
    const before = await scrape(gw.httpUrl);
    const half = rawConnect(port, 'half');
    expect(await half.connack).toBe(0);
    half.socket.write(mqttPackets.publish('machines/half/telemetry', Buffer.from('{"metrics":{"a":1}}')).subarray(0, 10));
    const garbage = rawConnect(port, 'garbage');
    expect(await garbage.connack).toBe(0);
    garbage.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]));
    await garbage.closed;
    const c = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'after-garbage', reconnectPeriod: 0 });
    await c.publishAsync('machines/after/telemetry', JSON.stringify({ metrics: { a: 1 } }), { qos: 1 });
    await c.endAsync();
    half.socket.destroy();
    const after = await scrape(gw.httpUrl);
    expect(sample(after, 'smartops_readings_accepted_total') - sample(before, 'smartops_readings_accepted_total')).toBe(1);
  });
});
