/**
 * The broker's routing skip (gateway/src/broker/routing.ts): a client publish that no subscription
 * can match skips aedes' routing; everything a subscriber could receive must arrive exactly as
 * before: online and offline (clean=false) subscribers, retained messages, wills, $SYS, the
 * gateway's own QoS 1 alerts to a persistent session that is offline. Real aedes, real mqtt.js
 * clients over TCP. Each case also checks, from /metrics, which path the publishes took, so a
 * skip that never happens (or always happens) fails too.
 */
import { Aedes } from 'aedes';
import fc from 'fast-check';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { topicMatches, type MqttUser } from '../../gateway/src/auth/mqtt-acl.js';
import { hashPassword } from '../../gateway/src/auth/passwords.js';
import { Broker, type BrokerOptions } from '../../gateway/src/broker/broker.js';
import { filterMayMatch, SubscriptionIndex } from '../../gateway/src/broker/routing.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import { sample, scrape } from '../security/helpers.js';
import { startBareBroker } from '../helpers/broker.js';

interface TestBroker {
  broker: Broker;
  url: string;
  stored: Reading[];
  unrouted(): Promise<number>;
  filters(): Promise<number>;
  /** The non-zero `smartops_messages_rejected_total` lines of /metrics. */
  rejected(): Promise<string>;
  close(): Promise<void>;
}

const open: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c().catch(() => undefined);
});

async function startBroker(o: Partial<BrokerOptions> = {}, users: MqttUser[] = [], anonymous = true): Promise<TestBroker> {
  const stored: Reading[] = [];
  const { broker, registry, url, close } = await startBareBroker({
    broker: o,
    users,
    anonymous,
    outbox: {
      append: async (r) => {
        stored.push(...r);
      },
    },
  });
  const metric = async (name: string): Promise<number> => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await registry.metrics());
    if (!m) throw new Error(`${name} missing from /metrics`);
    return Number(m[1]);
  };
  const tb: TestBroker = {
    broker,
    url,
    stored,
    unrouted: () => metric('smartops_mqtt_publishes_unrouted_total'),
    filters: () => metric('smartops_mqtt_routing_filters'),
    rejected: async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('smartops_messages_rejected_total{') && !l.endsWith(' 0')).join('\n'),
    close,
  };
  open.push(() => tb.close());
  return tb;
}

async function connect(url: string, o: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...o });
  open.push(() => c.endAsync(true));
  return c;
}

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

function collect(c: mqtt.MqttClient): Received[] {
  const got: Received[] = [];
  c.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return got;
}

const reading = (i: number): string => JSON.stringify({ ts: Date.now() - 1000 + i, metrics: { temp_c: 20 + i } });

describe('filterMayMatch', () => {
  // Levels from a small alphabet so that matches are frequent; '#' and '+' also inside levels and
  // '#' before the last level, which aedes refuses from clients but its router takes from code.
  const level = fc.constantFrom('a', 'b', '', '+', '#', 'a+', '#b', '$x');
  const filterArb = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((f) => f.length > 0);
  const topicArb = fc.array(fc.constantFrom('a', 'b', '', 'c', '$x'), { minLength: 1, maxLength: 5 }).map((l) => l.join('/')).filter((t) => t.length > 0);

  it('is never false where aedes routes a topic to a filter (aedes itself is the reference)', async () => {
    let routed = 0;
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(filterArb, { minLength: 1, maxLength: 8 }), fc.uniqueArray(topicArb, { minLength: 1, maxLength: 8 }), async (filters, topics) => {
        const aedes = await Aedes.createBroker();
        try {
          const delivered = new Set<string>();
          await Promise.all(filters.map((f) => new Promise<void>((r) => aedes.subscribe(f, (p, cb) => (delivered.add(`${f}\u0000${p.topic}`), cb()), r))));
          for (const t of topics) await new Promise<void>((r) => aedes.publish({ cmd: 'publish', topic: t, payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => r()));
          for (const f of filters) {
            for (const t of topics) {
              if (delivered.has(`${f}\u0000${t}`)) expect(filterMayMatch(f, t), `${f} ~ ${t}`).toBe(true);
            }
          }
          routed += delivered.size;
        } finally {
          await new Promise<void>((r) => aedes.close(() => r()));
        }
      }),
      { numRuns: 150, seed: 7 },
    );
    // Not vacuous: the runs routed plenty.
    expect(routed).toBeGreaterThan(150);
  });

  it('agrees with the MQTT matcher (MQTT-4.7) for filters aedes accepts from clients', () => {
    const valid = fc.array(fc.constantFrom('a', 'b', '', '+'), { minLength: 1, maxLength: 4 }).chain((l) => fc.boolean().map((hash) => (hash ? [...l, '#'] : l).join('/')));
    fc.assert(
      fc.property(valid, topicArb, (f, t) => {
        expect(filterMayMatch(f, t), `${f} ~ ${t}`).toBe(topicMatches(f, t));
      }),
      { numRuns: 2000, seed: 11 },
    );
    // Edge cases written out.
    expect(filterMayMatch('machines/#', 'machines')).toBe(true);
    expect(filterMayMatch('machines/+', 'machines')).toBe(false);
    expect(filterMayMatch('machines/+/telemetry', 'machines//telemetry')).toBe(true);
    expect(filterMayMatch('machines/m1/telemetry', 'machines/m1/telemetryx')).toBe(false);
    expect(filterMayMatch('machines/m1', 'machines/m1/telemetry')).toBe(false);
    // Conservative: '#' before the last level matches the rest.
    expect(filterMayMatch('a/#/c', 'a/b/d')).toBe(true);
  });

  it('the index switches itself off past its bounds, and then routes everything', () => {
    const reasons: string[] = [];
    const idx = new SubscriptionIndex({ maxExactFilters: 2, maxWildcardFilters: 1 }, (r) => reasons.push(r));
    idx.record('a/b');
    idx.record('a/b');
    idx.record('x/+');
    idx.record('$SYS/#'); // matches only '$' topics, which are always routed: not kept
    expect(idx.filters).toBe(2);
    expect(idx.unrouted('a/c')).toBe(true);
    expect(idx.unrouted('a/b')).toBe(false);
    expect(idx.unrouted('x/y')).toBe(false);
    expect(idx.unrouted('$SYS/x')).toBe(false);
    idx.record('y/+');
    expect(idx.enabled).toBe(false);
    expect(reasons).toEqual(['more than 1 distinct wildcard filters']);
    expect(idx.unrouted('a/c')).toBe(false);
  });
});

describe('routing skip over TCP', () => {
  it('skips telemetry nobody subscribed to, and stores and acknowledges it as before', async () => {
    const b = await startBroker();
    const pub = await connect(b.url, { clientId: 'press-01' });
    for (let i = 0; i < 20; i++) await pub.publishAsync('machines/press-01/telemetry', reading(i), { qos: 1 });
    await pub.publishAsync('machines/press-01/telemetry', reading(20), { qos: 0 });
    await waitFor(() => b.stored.length === 21, 5000, '21 readings stored');
    expect(await b.unrouted()).toBe(21);
    expect(await b.filters()).toBe(0);
  });

  it('online subscribers (exact, +, #) get every message; those publishes are routed', async () => {
    const b = await startBroker();
    const exact = await connect(b.url, { clientId: 'hmi-exact' });
    const plus = await connect(b.url, { clientId: 'hmi-plus' });
    const all = await connect(b.url, { clientId: 'hmi-all' });
    const gotExact = collect(exact);
    const gotPlus = collect(plus);
    const gotAll = collect(all);
    await exact.subscribeAsync('machines/press-01/telemetry', { qos: 1 });
    await plus.subscribeAsync('machines/+/telemetry', { qos: 0 });
    const pub = await connect(b.url, { clientId: 'press-01' });
    await pub.publishAsync('machines/press-01/telemetry', reading(1), { qos: 1 });
    await pub.publishAsync('machines/press-02/telemetry', reading(2), { qos: 1 });
    await pub.publishAsync('machines/press-02/status', 'up', { qos: 1 }); // no subscriber yet
    await waitFor(() => gotExact.length === 1 && gotPlus.length === 2, 5000, 'deliveries');
    expect(await b.unrouted()).toBe(1);
    await all.subscribeAsync('#', { qos: 1 });
    await pub.publishAsync('machines/press-02/status', 'down', { qos: 1 });
    await waitFor(() => gotAll.length === 1, 5000, 'the # subscriber');
    expect(gotAll[0]).toMatchObject({ topic: 'machines/press-02/status', payload: 'down' });
    expect(gotExact.map((m) => m.topic)).toEqual(['machines/press-01/telemetry']);
    expect(gotPlus.map((m) => m.topic)).toEqual(['machines/press-01/telemetry', 'machines/press-02/telemetry']);
    expect(await b.unrouted()).toBe(1);
  });

  it('a persistent session that is offline gets its QoS 1 telemetry and the gateway\u2019s QoS 1 alerts when it comes back', async () => {
    const b = await startBroker();
    const plc = await connect(b.url, { clientId: 'plc-1', clean: false });
    await plc.subscribeAsync(['machines/press-01/telemetry', 'machines/press-01/alerts'], { qos: 1 });
    await plc.endAsync();
    const pub = await connect(b.url, { clientId: 'press-01' });
    for (let i = 0; i < 3; i++) await pub.publishAsync('machines/press-01/telemetry', reading(i), { qos: 1 });
    await pub.publishAsync('machines/press-02/telemetry', reading(9), { qos: 1 }); // nobody's
    await b.broker.publish('machines/press-01/alerts', '{"event":"opened"}', 1);
    await b.broker.publish('machines/press-01/alerts', '{"event":"resolved"}', 1);
    expect(await b.unrouted()).toBe(1);

    const back = mqtt.connect(b.url, { clientId: 'plc-1', clean: false, reconnectPeriod: 0 });
    open.push(() => back.endAsync(true));
    const got = collect(back);
    await waitFor(() => got.length === 5, 5000, 'five queued messages');
    expect(got.map((m) => m.topic)).toEqual([...Array(3).fill('machines/press-01/telemetry'), 'machines/press-01/alerts', 'machines/press-01/alerts']);
    expect(got.slice(0, 3).map((m) => (JSON.parse(m.payload) as { metrics: { temp_c: number } }).metrics.temp_c)).toEqual([20, 21, 22]);
    expect(got.slice(3).map((m) => m.payload)).toEqual(['{"event":"opened"}', '{"event":"resolved"}']);
  });

  it('an offline persistent wildcard subscription is routed too (it lives only in the persistence)', async () => {
    const b = await startBroker();
    const plc = await connect(b.url, { clientId: 'plc-w', clean: false });
    await plc.subscribeAsync('machines/+/status', { qos: 1 });
    await plc.endAsync();
    const pub = await connect(b.url, { clientId: 'press-07' });
    await pub.publishAsync('machines/press-07/status', 'idle', { qos: 1 });
    expect(await b.unrouted()).toBe(0);
    const back = mqtt.connect(b.url, { clientId: 'plc-w', clean: false, reconnectPeriod: 0 });
    open.push(() => back.endAsync(true));
    const got = collect(back);
    await waitFor(() => got.length === 1, 5000, 'the queued status');
    expect(got[0]).toMatchObject({ topic: 'machines/press-07/status', payload: 'idle' });
  });

  it('a retained message with no subscriber is stored and reaches a later subscriber', async () => {
    const b = await startBroker();
    const pub = await connect(b.url, { clientId: 'press-03' });
    await pub.publishAsync('machines/press-03/telemetry', reading(3), { qos: 1, retain: true });
    await pub.publishAsync('machines/press-03/telemetry', reading(4), { qos: 1 });
    expect(await b.unrouted()).toBe(1); // the retained one took aedes' path
    const sub = await connect(b.url, { clientId: 'late' });
    const got = collect(sub);
    await sub.subscribeAsync('machines/press-03/telemetry', { qos: 1 });
    await waitFor(() => got.length === 1, 5000, 'the retained message');
    expect(got[0]?.retain).toBe(true);
    expect((JSON.parse(got[0]?.payload ?? '{}') as { metrics: { temp_c: number } }).metrics.temp_c).toBe(23);
  });

  it('an empty retained publish clears the retained reading and is not a rejected message (MQTT-3.3.1-10)', async () => {
    const b = await startBroker();
    const pub = await connect(b.url, { clientId: 'press-05' });
    await pub.publishAsync('machines/press-05/telemetry', reading(5), { qos: 1, retain: true });
    await pub.publishAsync('machines/press-05/telemetry', '', { qos: 1, retain: true });
    // Not retained: an empty payload is still no reading.
    await pub.publishAsync('machines/press-05/telemetry', '', { qos: 1 });
    expect(b.stored).toHaveLength(1);
    expect(await b.rejected()).toBe('smartops_messages_rejected_total{reason="invalid_json"} 1');
    const sub = await connect(b.url, { clientId: 'late-5' });
    const got = collect(sub);
    await sub.subscribeAsync('machines/press-05/telemetry', { qos: 1 });
    // A retained reading would arrive at once; give it time to.
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([]);
  });

  it('delivers a will and $SYS messages', async () => {
    const b = await startBroker();
    // Two watchers: aedes drops a QoS 1 message for a subscriber that got a QoS 0 one published
    // after it (its per-broker dedupe counter; the QoS 1 path awaits the persistence first), and
    // the will is published next to the $SYS disconnect notice. That is aedes' own behaviour,
    // with or without the skip.
    const watcher = await connect(b.url, { clientId: 'watcher' });
    const got = collect(watcher);
    await watcher.subscribeAsync('machines/+/status', { qos: 1 });
    const sys = await connect(b.url, { clientId: 'sys-watcher' });
    const gotSys = collect(sys);
    await sys.subscribeAsync('$SYS/#', { qos: 0 });
    const dev = await connect(b.url, { clientId: 'press-04', will: { topic: 'machines/press-04/status', payload: Buffer.from('gone'), qos: 1, retain: false } });
    await waitFor(() => gotSys.some((m) => m.topic.endsWith('/new/clients') && m.payload === 'press-04'), 5000, '$SYS new client');
    (dev.stream as unknown as { destroy(): void }).destroy(); // no DISCONNECT: the will is sent
    await waitFor(() => got.length === 1, 5000, 'the will');
    expect(got[0]).toMatchObject({ topic: 'machines/press-04/status', payload: 'gone' });
    await waitFor(() => gotSys.some((m) => m.topic.endsWith('/disconnect/clients') && m.payload === 'press-04'), 5000, '$SYS disconnect');
    expect(await b.unrouted()).toBe(0);
  });

  it('indexes what is stored: a filter the SUBACK refused is neither stored nor indexed', async () => {
    const users: MqttUser[] = [{ username: 'plc', passwordHash: await hashPassword('pw'), publish: [], machines: ['plc'], subscribe: ['machines/press-01/alerts'] }];
    const b = await startBroker({}, users, false);
    const plc = await connect(b.url, { clientId: 'plc-r', clean: false, username: 'plc', password: 'pw' });
    // (mqtt.js reports the refused filter as an error, with the SUBACK codes.)
    const granted = await new Promise<number[] | undefined>((resolve) => {
      plc.subscribe(['machines/press-01/alerts', 'machines/+/telemetry'], { qos: 1 }, (err) => resolve((err as { packet?: { granted?: number[] } } | null)?.packet?.granted));
    });
    expect(granted).toEqual([1, 128]);
    // aedes hands its persistence both filters; the broker keeps the refused one out
    // (test/security/mqtt-persistent-acl.test.ts), so the index knows only the granted one.
    expect(await b.filters()).toBe(1);
  });

  it('past its bounds the skip switches itself off and every publish is routed', async () => {
    const b = await startBroker({ routingLimits: { maxExactFilters: 1, maxWildcardFilters: 1 } });
    const s1 = await connect(b.url, { clientId: 's1' });
    const got = collect(s1);
    const pub = await connect(b.url, { clientId: 'press-05' });
    await pub.publishAsync('machines/press-05/telemetry', reading(1), { qos: 1 });
    expect(await b.unrouted()).toBe(1);
    await s1.subscribeAsync(['machines/press-05/alerts', 'machines/press-06/alerts'], { qos: 1 });
    expect(await b.filters()).toBe(-1);
    await pub.publishAsync('machines/press-05/telemetry', reading(2), { qos: 1 });
    await b.broker.publish('machines/press-06/alerts', 'a', 1);
    await waitFor(() => got.length === 1, 5000, 'the alert');
    expect(await b.unrouted()).toBe(1);
    expect(b.stored).toHaveLength(2);
  });
});

describe('routing skip in the gateway', () => {
  it('counts skipped publishes in /metrics', async () => {
    const gw = await startTestGateway();
    open.push(() => gw.stop());
    const pub = await connect(gw.mqttUrl, { clientId: 'press-01' });
    for (let i = 0; i < 5; i++) await pub.publishAsync('machines/press-01/telemetry', reading(i), { qos: 1 });
    const m = await scrape(gw.httpUrl);
    expect(sample(m, 'smartops_mqtt_publishes_unrouted_total')).toBe(5);
    expect(sample(m, 'smartops_mqtt_routing_filters')).toBe(0);
  });
});
