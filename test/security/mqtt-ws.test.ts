/**
 * MQTT over WebSocket gets the same protections as TCP: passwords, ACLs, the packet-size guard,
 * the failed-login throttle. Real gateway, mqtt.js over ws://.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../gateway/src/auth/passwords.js';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { WebSocket } from 'ws';
import { mqttPackets, sample, scrape } from './helpers.js';

describe('MQTT over WebSocket', () => {
  let gw: TestGateway;
  let url: string;
  beforeAll(async () => {
    gw = await startTestGateway({
      mqtt: { allowAnonymous: false, users: [{ username: 'press-01', passwordHash: await hashPassword('press-01-password') }], ws: { enabled: true, host: '127.0.0.1', port: 0 } },
    });
    url = `ws://127.0.0.1:${gw.gateway.wsPort}`;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('authenticates, applies the ACL and stores readings', async () => {
    await expect(mqtt.connectAsync(url, { username: 'press-01', password: 'nope', reconnectPeriod: 0 })).rejects.toThrow(/Bad username or password/i);
    const c = await mqtt.connectAsync(url, { username: 'press-01', password: 'press-01-password', reconnectPeriod: 0 });
    await c.publishAsync('machines/press-01/telemetry', JSON.stringify({ metrics: { a: 1 } }), { qos: 1 });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('machines/press-02/telemetry', JSON.stringify({ metrics: { a: 1 } }), { qos: 1 });
    await closed;
    c.end(true);
    await waitFor(async () => (await getJson<{ readings: unknown[] }>(`${gw.httpUrl}/api/v1/machines/press-01/readings`)).body.readings.length === 1);
    const s = await scrape(gw.httpUrl);
    expect(sample(s, 'smartops_mqtt_auth_failures_total', { reason: 'bad_credentials' })).toBe(1);
    expect(sample(s, 'smartops_mqtt_auth_failures_total', { reason: 'publish_denied' })).toBe(1);
  });

  it('refuses a 10 MB packet and counts it', async () => {
    const c = await mqtt.connectAsync(url, { username: 'press-01', password: 'press-01-password', reconnectPeriod: 0 });
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish('machines/press-01/telemetry', Buffer.alloc(10 * 1024 * 1024, 0x20), { qos: 1 });
    await closed;
    c.end(true);
    const s = await waitFor(async () => {
      const x = await scrape(gw.httpUrl);
      return sample(x, 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' }) >= 1 ? x : undefined;
    });
    expect(sample(s, 'smartops_messages_rejected_total', { reason: 'payload_too_large' })).toBeGreaterThanOrEqual(1);
  });

  it('refuses one oversized WebSocket message (the packet in a single frame) and counts it', async () => {
    const before = sample(await scrape(gw.httpUrl), 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' });
    const ws = new WebSocket(url, 'mqtt');
    ws.binaryType = 'nodebuffer';
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(mqttPackets.connect('one-frame', { username: 'press-01', password: 'press-01-password' }));
    await new Promise<void>((resolve) => ws.once('message', () => resolve()));
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.send(mqttPackets.publish('machines/press-01/telemetry', Buffer.alloc(10 * 1024 * 1024, 0x20)));
    await closed;
    await waitFor(async () => sample(await scrape(gw.httpUrl), 'smartops_mqtt_clients_dropped_total', { reason: 'packet_too_large' }) > before);
  });
});
