/**
 * A persistent session's offline queue is bounded (mqtt.maxOfflineMessagesPerClient; see
 * gateway/src/broker/offline-queue.ts): a subscriber with CleanSession=0 that goes away gets at most
 * that many QoS 1 messages kept for it, the rest are counted, and what was kept is delivered when it
 * returns. An online persistent subscriber is not limited. Real aedes and mqtt.js clients over TCP;
 * the durable append is a stand-in (the broker is what is tested).
 */
import mqtt from 'mqtt';
import { afterEach, expect, it } from 'vitest';
import { startBareBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/gateway.js';

const open: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c().catch(() => undefined);
});

async function client(url: string, clientId: string, clean: boolean): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, { clientId, clean, reconnectPeriod: 0 });
  open.push(() => c.endAsync(true));
  return c;
}

const seqs = (got: string[]): number[] => got.map((p) => (JSON.parse(p) as { seq: number }).seq);

it('keeps at most the limit for an offline persistent session, counts the rest, delivers what it kept on return', async () => {
  const b = await startBareBroker({ broker: { maxOfflineMessagesPerClient: 50 } });
  open.push(() => b.close());
  const metric = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await b.registry.metrics())?.[1]);

  // hmi-1 subscribes with a persistent session and goes away; hmi-2 stays connected.
  const away = await client(b.url, 'hmi-1', false);
  await away.subscribeAsync('machines/+/telemetry', { qos: 1 });
  await away.endAsync();
  const stays = await client(b.url, 'hmi-2', false);
  const live: string[] = [];
  stays.on('message', (_t, p) => live.push(p.toString()));
  await stays.subscribeAsync('machines/+/telemetry', { qos: 1 });

  const pub = await client(b.url, 'press-01', true);
  const t0 = Date.now() - 60_000;
  for (let i = 0; i < 80; i++) await pub.publishAsync('machines/press-01/telemetry', JSON.stringify({ ts: t0 + i, metrics: { temp_c: i }, seq: i }), { qos: 1 });

  await waitFor(async () => live.length === 80, 5000, 'the online subscriber got all 80');
  expect(await metric('smartops_mqtt_offline_dropped_total')).toBe(30);
  expect(await metric('smartops_mqtt_queued_messages')).toBe(50);

  // Back with its session: the 50 it kept arrive, in order, and are acknowledged away.
  const returned = mqtt.connect(b.url, { clientId: 'hmi-1', clean: false, reconnectPeriod: 0 });
  open.push(() => returned.endAsync(true));
  const got: string[] = [];
  returned.on('message', (_t, p) => got.push(p.toString()));
  await waitFor(async () => got.length === 50, 5000, 'the 50 kept messages delivered');
  expect(seqs(got)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  await waitFor(async () => (await metric('smartops_mqtt_queued_messages')) === 0, 5000, 'queue acknowledged away');
  // No more were kept than the limit, and none are delivered twice.
  await new Promise((r) => setTimeout(r, 200));
  expect(got).toHaveLength(50);
});
