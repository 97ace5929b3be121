/**
 * Misbehaving MQTT clients must not stall the others: a subscriber that never reads its socket,
 * a publisher flooding as fast as it can, and more connections than mqtt.maxConnections.
 * Real gateway, real sockets. The assertions are causal (the honest client was fully served while
 * the slow one was still connected and stuck), not timings.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, type BrokerOptions } from '../../gateway/src/broker/broker.js';
import { startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { mqttPackets, rawConnect, sample, scrape } from './helpers.js';
import { startBareBroker } from '../helpers/broker.js';

const big = Buffer.alloc(64 * 1024, 0x61);

/** A Broker on its own (no gateway), for options the gateway config does not reach. */
async function startBroker(o: Partial<BrokerOptions>): Promise<{ port: number; scrape(): Promise<Map<string, number>>; close(): Promise<void> }> {
  const { registry, port, close } = await startBareBroker({ broker: o });
  return {
    port,
    async scrape() {
      const text = await registry.metrics();
      const out = new Map<string, number>();
      for (const m of text.matchAll(/^(smartops_mqtt_clients_dropped_total)\{reason="([^"]+)"\} (\S+)$/gm)) out.set(`${m[1]}{reason="${m[2]}"}`, Number(m[3]));
      return out;
    },
    close,
  };
}

describe('slow and misbehaving MQTT clients', () => {
  let gw: TestGateway | undefined;
  afterEach(async () => {
    await gw?.stop();
    gw = undefined;
  });

  for (const filter of ['busy/#', '#']) {
    it(`a subscriber to ${filter} that never reads delays no one, holds bounded memory, and is cut off (slow_consumer)`, async () => {
      // drainTimeout far away: the queue limit (mqtt.maxQueuedBytesPerClient, 4 MiB) must act first.
      gw = await startTestGateway({ mqtt: { drainTimeoutMs: 120_000 } });
      const g = gw;
      const port = g.gateway.mqttPort;
      // Subscribes, then stops reading: its socket buffers fill up.
      const slow = rawConnect(port, 'stuck-subscriber');
      expect(await slow.connack).toBe(0);
      slow.socket.write(mqttPackets.subscribe(1, filter, 1));
      await new Promise((r) => setTimeout(r, 100));
      slow.socket.pause();

      const flooder = await mqtt.connectAsync(g.mqttUrl, { clientId: 'busy-publisher', reconnectPeriod: 0 });
      const honest = await mqtt.connectAsync(g.mqttUrl, { clientId: 'honest', reconnectPeriod: 0 });
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      // 128 MB through the busy topic (QoS 1, each acknowledged), interleaved with honest telemetry.
      for (let i = 0; i < 2000; i++) {
        await flooder.publishAsync(`busy/${i % 4}`, big, { qos: 1 });
        if (i % 40 === 0) await honest.publishAsync('machines/honest-01/telemetry', JSON.stringify({ ts: Date.now(), metrics: { i } }), { qos: 1 });
        if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      }
      const s = await scrape(g.httpUrl);
      expect(sample(s, 'smartops_readings_accepted_total')).toBe(50);
      expect(sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'slow_consumer' })).toBe(1);
      expect(sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'drain_timeout' })).toBe(0);
      // Without the limit the gateway would have queued the whole 128 MB for the stuck client.
      expect(peak - rss0).toBeLessThan(80 * 1024 * 1024);
      expect(flooder.connected && honest.connected).toBe(true);
      // (A paused socket only notices the close once it reads again.)
      slow.socket.resume();
      await slow.closed;
      await flooder.endAsync();
      await honest.endAsync();
    });
  }

  it('a subscriber that stops reading below the queue limit is cut off after drainTimeoutMs (drain_timeout)', async () => {
    // The broker alone with a queue limit far above the backlog, so only the drain timeout can act
    // (loopback kernel buffers can hold tens of MB, more than the gateway's default queue limit).
    // Storage is a stand-in here: this test is about the broker's connection handling.
    const b = await startBroker({ drainTimeoutMs: 1000, maxQueuedBytesPerClient: 1024 * 1024 * 1024 });
    try {
      const slow = rawConnect(b.port, 'stalled');
      expect(await slow.connack).toBe(0);
      slow.socket.write(mqttPackets.subscribe(1, 'busy/#', 0));
      await new Promise((r) => setTimeout(r, 100));
      slow.socket.pause();
      const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { clientId: 'pub', reconnectPeriod: 0 });
      let sent = 0;
      // Publish until the drain timeout has fired (at most 256 MB).
      while (sample(await b.scrape(), 'smartops_mqtt_clients_dropped_total', { reason: 'drain_timeout' }) === 0 && sent < 4096) {
        for (let i = 0; i < 64; i++) await pub.publishAsync('busy/x', big, { qos: 1 });
        sent += 64;
      }
      // On a fast machine the 256 MB can be through before the 1 s timer fires: wait for it.
      const s = await waitFor(
        async () => {
          const x = await b.scrape();
          return sample(x, 'smartops_mqtt_clients_dropped_total', { reason: 'drain_timeout' }) > 0 ? x : undefined;
        },
        10000,
        'the drain timeout',
      );
      expect(sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'drain_timeout' })).toBe(1);
      expect(sample(s, 'smartops_mqtt_clients_dropped_total', { reason: 'slow_consumer' })).toBe(0);
      slow.socket.resume();
      await slow.closed;
      await pub.endAsync();
    } finally {
      await b.close();
    }
  });

  it('a flooding publisher does not starve another publisher', async () => {
    gw = await startTestGateway({});
    const g = gw;
    const flooder = await mqtt.connectAsync(g.mqttUrl, { clientId: 'flooder', reconnectPeriod: 0 });
    const honest = await mqtt.connectAsync(g.mqttUrl, { clientId: 'honest', reconnectPeriod: 0 });
    let flooding = true;
    let flooded = 0;
    const flood = (async () => {
      const payload = JSON.stringify({ metrics: { x: 1 } });
      while (flooding && flooder.connected) {
        // QoS 0 without waiting: as fast as the socket takes it.
        for (let i = 0; i < 200; i++) flooder.publish('machines/flood-01/telemetry', payload, { qos: 0 });
        flooded += 200;
        await new Promise((r) => setImmediate(r));
      }
    })();
    await waitFor(() => flooded >= 2000, 10000, 'flood under way');
    const floodedAtStart = flooded;
    for (let i = 0; i < 100; i++) {
      await honest.publishAsync('machines/honest-02/telemetry', JSON.stringify({ ts: Date.now() - 1000 + i, metrics: { i } }), { qos: 1 });
    }
    // The flood went on the whole time the honest publisher was served.
    expect(flooded).toBeGreaterThan(floodedAtStart);
    flooding = false;
    await flood;
    expect(flooded).toBeGreaterThan(1000);
    const r = await waitFor(async () => {
      const x = (await (await fetch(`${g.httpUrl}/api/v1/machines/honest-02/readings?limit=1000`)).json()) as { readings: unknown[] };
      return x.readings.length === 100 ? x : undefined;
    }, 20000, 'honest readings stored');
    expect(r.readings).toHaveLength(100);
    await flooder.endAsync();
    await honest.endAsync();
  });

  it('mqtt.maxConnections is enforced per listener and counted; a freed slot can be used again', async () => {
    gw = await startTestGateway({ mqtt: { maxConnections: 5 } });
    const g = gw;
    const port = g.gateway.mqttPort;
    const ok = Array.from({ length: 5 }, (_, i) => rawConnect(port, `c${i}`));
    for (const c of ok) expect(await c.connack).toBe(0);
    const extra = rawConnect(port, 'one-too-many');
    await expect(extra.connack).rejects.toThrow(/closed before CONNACK/);
    const s = await waitFor(async () => {
      const x = await scrape(g.httpUrl);
      return sample(x, 'smartops_mqtt_clients_dropped_total', { reason: 'max_connections' }) >= 1 ? x : undefined;
    });
    expect(sample(s, 'smartops_mqtt_clients_connected')).toBe(5);
    ok[0]?.socket.destroy();
    await ok[0]?.closed;
    const again = await waitFor(async () => {
      const c = rawConnect(port, 'after-free');
      try {
        return (await c.connack) === 0 ? c : undefined;
      } catch {
        return undefined;
      }
    });
    again.socket.destroy();
    for (const c of ok) c.socket.destroy();
  });

  it('a client that connects and never sends CONNECT is dropped after connectTimeoutMs', async () => {
    gw = await startTestGateway({ mqtt: { connectTimeoutMs: 500 } });
    const { connect } = await import('node:net');
    const s = connect({ host: '127.0.0.1', port: gw.gateway.mqttPort });
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
    expect(s.destroyed).toBe(true);
  });
});
