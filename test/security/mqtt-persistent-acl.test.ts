/**
 * A refused filter must not reach a persistent session through its offline queue. aedes stores a
 * SUBSCRIBE packet's whole filter list in its persistence once one filter is authorized, so a
 * device allowed only its alerts could add `machines/+/telemetry` next to them with clean=false,
 * get SUBACK 0x80 for it, and still receive every machine's telemetry queued while it was offline
 * (and, while online, grow its queue with messages that are never sent). The broker keeps such
 * filters out of the persistence (gateway/src/broker/routing.ts `mayStore`). Real broker, real
 * mqtt.js clients over TCP.
 */
import mqtt from 'mqtt';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MqttAcl, type MqttUser } from '../../gateway/src/auth/mqtt-acl.js';
import { hashPassword } from '../../gateway/src/auth/passwords.js';
import { Broker } from '../../gateway/src/broker/broker.js';
import { DEFAULT_LIMITS } from '../../gateway/src/contract/reading.js';
import { Ingest } from '../../gateway/src/ingest/ingest.js';
import { RejectLog } from '../../gateway/src/ingest/rejects.js';
import { createCoreMetrics, createRegistry } from '../../gateway/src/obs/metrics.js';
import { waitFor } from '../helpers/gateway.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function startBroker(users: MqttUser[]): Promise<{ broker: Broker; url: string }> {
  const metrics = createCoreMetrics(createRegistry());
  const logger = pino({ level: 'silent' });
  const ingest = new Ingest({ limits: DEFAULT_LIMITS, outbox: { append: async () => undefined }, rejects: new RejectLog(10), metrics, logger, rejectLogIntervalMs: 10000, onAccepted: () => undefined });
  const broker = await Broker.create(
    { host: '127.0.0.1', port: 0, ws: { enabled: false, host: '127.0.0.1', port: 0 }, tls: { enabled: false, host: '127.0.0.1', port: 0, requireClientCert: false }, maxConnections: 100, connectTimeoutMs: 5000, drainTimeoutMs: 30000, maxInflightPerClient: 100 },
    { ingest, acl: new MqttAcl(users, false), metrics, logger },
  );
  const port = (await broker.listen()).mqtt;
  cleanups.push(() => broker.close());
  return { broker, url: `mqtt://127.0.0.1:${port}` };
}

function connect(url: string, o: mqtt.IClientOptions): mqtt.MqttClient {
  const c = mqtt.connect(url, { reconnectPeriod: 0, ...o });
  cleanups.push(() => c.endAsync(true));
  return c;
}

/** SUBACK codes; mqtt.js reports a refused filter as an error carrying the SUBACK packet. */
function subscribe(c: mqtt.MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    c.subscribe(filters, { qos: 1 }, (err, granted) => {
      const codes = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
      if (codes) resolve(codes);
      else if (!err && granted) resolve(granted.map((g) => g.qos));
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

describe('persistent sessions and the subscribe ACL', () => {
  it('a filter refused in the SUBACK queues nothing for the offline session; the granted one still does', async () => {
    const users: MqttUser[] = [
      { username: 'line-plc', passwordHash: await hashPassword('plc-pw'), publish: [], machines: ['line-plc'], subscribe: ['machines/press-01/alerts'] },
      { username: 'press-02', passwordHash: await hashPassword('press-pw'), publish: [], machines: ['press-02'], subscribe: [] },
    ];
    const { broker, url } = await startBroker(users);
    const plc = connect(url, { clientId: 'plc', clean: false, username: 'line-plc', password: 'plc-pw' });
    await new Promise((r) => plc.once('connect', r));
    expect(await subscribe(plc, ['machines/press-01/alerts', 'machines/+/telemetry', '#'])).toEqual([1, 128, 128]);
    await plc.endAsync();

    const press = await mqtt.connectAsync(url, { clientId: 'press-02', username: 'press-02', password: 'press-pw', reconnectPeriod: 0 });
    cleanups.push(() => press.endAsync(true));
    await press.publishAsync('machines/press-02/telemetry', JSON.stringify({ metrics: { temp_c: 1 } }), { qos: 1 });
    await broker.publish('machines/press-01/alerts', '{"event":"opened"}', 1);

    const back = connect(url, { clientId: 'plc', clean: false, username: 'line-plc', password: 'plc-pw' });
    const got: string[] = [];
    back.on('message', (topic) => got.push(topic));
    await waitFor(() => got.length >= 1, 5000, 'the queued alert');
    // Anything else queued would have been sent with the alert, in order; give it one more turn.
    await press.publishAsync('machines/press-02/telemetry', JSON.stringify({ metrics: { temp_c: 2 } }), { qos: 1 });
    await broker.publish('machines/press-01/alerts', '{"event":"resolved"}', 1);
    await waitFor(() => got.length >= 2, 5000, 'the live alert');
    expect(got).toEqual(['machines/press-01/alerts', 'machines/press-01/alerts']);
  });
});
