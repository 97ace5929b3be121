/**
 * QoS 2 telemetry is stored once (MQTT-4.3.3: exactly once delivery). A sender that did not get the
 * PUBREC resends the PUBLISH with DUP set and the same packet id (MQTT-4.3.3-1, MQTT-4.4.0-1: also
 * after reconnecting with CleanSession=0); the receiver must not deliver it again until the PUBREL
 * (MQTT-4.3.3-2). aedes runs the authorizePublish hook, where the gateway stores a reading, before
 * it looks the packet id up (lib/handlers/publish.js), so the duplicate check is the gateway's.
 * Real aedes over TCP; the packets are written by hand (mqtt-packet) because a library client does
 * not resend on request; the durable append is a stand-in that records what it was given.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterEach, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import mqtt from 'mqtt';
import { startBareBroker } from '../helpers/broker.js';
import { getJson, startTestGateway, waitFor } from '../helpers/gateway.js';

const open: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c();
});

/** A hand-driven MQTT 3.1.1 connection: send packets, await the next packet of a kind. */
class Wire {
  private readonly got: Packet[] = [];
  private wake: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p: Packet) => {
      this.got.push(p);
      this.wake?.();
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    open.push(() => {
      socket.destroy();
    });
  }

  static async open(port: number, clientId: string, clean: boolean): Promise<Wire> {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    const w = new Wire(socket);
    w.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 60 });
    const ack = await w.next('connack');
    expect(ack.cmd === 'connack' && ack.returnCode).toBe(0);
    return w;
  }

  send(p: Packet): void {
    this.socket.write(mqttPacket.generate(p));
  }

  async next(cmd: Packet['cmd'], timeoutMs = 5000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.got.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.got.splice(i, 1)[0] as Packet;
      if (Date.now() > deadline) throw new Error(`no ${cmd} within ${timeoutMs} ms (got ${this.got.map((p) => p.cmd).join(', ') || 'nothing'})`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  end(): Promise<void> {
    this.socket.end();
    return this.closed;
  }
}

function publish(machine: string, seq: number, messageId: number, dup: boolean): Packet {
  return {
    cmd: 'publish',
    topic: `machines/${machine}/telemetry`,
    payload: Buffer.from(JSON.stringify({ ts: Date.now(), metrics: { temp_c: 20 + seq }, seq })),
    qos: 2,
    messageId,
    dup,
    retain: false,
  };
}

/** The broker with a stand-in append that takes `commitMs` and then stores, or fails with `fail`. */
async function start(o: { commitMs?: number; fail?: string } = {}) {
  const stored: Reading[] = [];
  const appends: number[] = [];
  const append = (r: Reading[]): Promise<void> => {
    appends.push(r.length);
    return new Promise((resolve, reject) =>
      setTimeout(() => {
        if (o.fail) return reject(new Error(o.fail));
        stored.push(...r);
        resolve();
      }, o.commitMs ?? 0),
    );
  };
  const b = await startBareBroker({ outbox: { append } });
  open.push(() => b.close());
  return { ...b, stored, appends };
}

it('a QoS 2 PUBLISH resent with DUP before PUBREL is acknowledged again but stored once', async () => {
  const b = await start();
  const w = await Wire.open(b.port, 'press-q2', true);
  w.send(publish('press-q2', 1, 7, false));
  expect((await w.next('pubrec')).messageId).toBe(7);
  // The PUBREC was "lost": the sender resends the same message (MQTT-4.3.3-1).
  w.send(publish('press-q2', 1, 7, true));
  expect((await w.next('pubrec')).messageId).toBe(7);
  w.send({ cmd: 'pubrel', messageId: 7 });
  expect((await w.next('pubcomp')).messageId).toBe(7);
  expect(b.stored.map((r) => r.seq)).toEqual([1]);
  // After PUBCOMP the packet id is free again: a new message with it is a new reading.
  w.send(publish('press-q2', 2, 7, false));
  expect((await w.next('pubrec')).messageId).toBe(7);
  w.send({ cmd: 'pubrel', messageId: 7 });
  await w.next('pubcomp');
  expect(b.stored.map((r) => r.seq)).toEqual([1, 2]);
  const text = await b.registry.metrics();
  expect(text).toMatch(/smartops_mqtt_qos2_duplicates_total 1\b/);
});

it('a QoS 2 PUBLISH resent after a reconnect with CleanSession=0 is stored once', async () => {
  const b = await start();
  const w1 = await Wire.open(b.port, 'lathe-q2', false);
  w1.send(publish('lathe-q2', 1, 3, false));
  await w1.next('pubrec');
  // Connection lost before the sender saw the PUBREC; it reconnects and resends (MQTT-4.4.0-1).
  await w1.end();
  await waitFor(async () => /^smartops_mqtt_clients_connected 0$/m.test(await b.registry.metrics()), 5000, 'disconnect seen');
  const w2 = await Wire.open(b.port, 'lathe-q2', false);
  w2.send(publish('lathe-q2', 1, 3, true));
  expect((await w2.next('pubrec')).messageId).toBe(3);
  w2.send({ cmd: 'pubrel', messageId: 3 });
  expect((await w2.next('pubcomp')).messageId).toBe(3);
  expect(b.stored.map((r) => r.seq)).toEqual([1]);
  expect(await b.registry.metrics()).toMatch(/smartops_mqtt_qos2_duplicates_total 1\b/);
});

it('a resend that arrives while the first copy is being committed waits for it and is not stored again', async () => {
  const b = await start({ commitMs: 300 });
  const w = await Wire.open(b.port, 'drill-q2', true);
  // Both copies in one TCP segment: aedes hands them to the hook together, before either is stored.
  w.send(publish('drill-q2', 1, 11, false));
  w.send(publish('drill-q2', 1, 11, true));
  expect((await w.next('pubrec')).messageId).toBe(11);
  w.send({ cmd: 'pubrel', messageId: 11 });
  await w.next('pubcomp');
  expect(b.appends).toEqual([1]);
  expect(b.stored.map((r) => r.seq)).toEqual([1]);
});

it('a resend of a first copy that could not be stored is refused too: no PUBREC for a reading that is not durable', async () => {
  const b = await start({ commitMs: 200, fail: 'disk full (test)' });
  const w = await Wire.open(b.port, 'saw-q2', true);
  w.send(publish('saw-q2', 1, 12, false));
  w.send(publish('saw-q2', 1, 12, true));
  // The broker closes the connection without acknowledging either copy (MQTT-3.3.5-2).
  await w.closed;
  await expect(w.next('pubrec', 200)).rejects.toThrow(/no pubrec/);
  expect(b.appends).toEqual([1]);
  expect(b.stored).toEqual([]);
});

it('a QoS 2 message resent after a clean-session reconnect is a new message (the session, and its state, were discarded)', async () => {
  const b = await start();
  const w1 = await Wire.open(b.port, 'mill-q2', false);
  w1.send(publish('mill-q2', 1, 9, false));
  await w1.next('pubrec');
  await w1.end();
  // CleanSession=1 discards the session (MQTT-3.1.2-6): the sender's copy is gone too, so what it
  // sends now under the same id is new; storing it is right.
  const w2 = await Wire.open(b.port, 'mill-q2', true);
  w2.send(publish('mill-q2', 2, 9, false));
  await w2.next('pubrec');
  w2.send({ cmd: 'pubrel', messageId: 9 });
  await w2.next('pubcomp');
  expect(b.stored.map((r) => r.seq)).toEqual([1, 2]);
});

it('the whole gateway: QoS 2 readings from a library client are each stored once, none counted as a duplicate', async () => {
  const gw = await startTestGateway();
  open.push(() => gw.stop());
  const c = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'press-q2-lib', reconnectPeriod: 0 });
  open.push(() => c.endAsync(true));
  const t0 = Date.now() - 60_000;
  await Promise.all(Array.from({ length: 100 }, (_, i) => c.publishAsync('machines/press-q2/telemetry', JSON.stringify({ ts: t0 + i, metrics: { temp_c: i } }), { qos: 2 })));
  const r = await waitFor(async () => {
    const x = await getJson<{ readings: { ts: number }[] }>(`${gw.httpUrl}/api/v1/machines/press-q2/readings?limit=1000`);
    return x.body.readings.length === 100 ? x.body.readings : undefined;
  }, 10_000, '100 readings stored');
  expect(new Set(r.map((x) => x.ts)).size).toBe(100);
  const m = await fetch(`${gw.httpUrl}/metrics`).then((x) => x.text());
  expect(m).toMatch(/^smartops_readings_accepted_total 100$/m);
  expect(m).toMatch(/^smartops_mqtt_qos2_duplicates_total 0$/m);
});
