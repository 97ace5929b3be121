/**
 * MQTT authentication and per-device ACLs on a real gateway with real MQTT clients: users from the
 * config and from a users file written by `smartops-gateway user add` (a real child process);
 * every refusal is refused on the wire and counted in /metrics.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../gateway/src/auth/passwords.js';
import { MqttAcl, type DeviceIdentity } from '../../gateway/src/auth/mqtt-acl.js';
import { LoginThrottle } from '../../gateway/src/auth/throttle.js';
import { startGateway } from '../../gateway/src/main.js';
import { getJson, startTestGateway, testConfig, waitFor, type TestGateway } from '../helpers/gateway.js';
import { sample, scrape } from './helpers.js';

const root = new URL('../..', import.meta.url).pathname;

/** `smartops-gateway user add` as a user runs it. */
function userAdd(usersFile: string, username: string, password: string, extra: string[] = []): void {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SMARTOPS_')) delete env[k];
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'gateway/src/cli.ts'), 'user', 'add', username, '--users-file', usersFile, '--password-stdin', ...extra], {
    cwd: root,
    env,
    input: `${password}\n`,
    encoding: 'utf8',
    timeout: 60000,
  });
  if (r.status !== 0) throw new Error(`user add failed (${r.status}): ${r.stderr}`);
}

async function refusal(url: string, opts: mqtt.IClientOptions): Promise<number | undefined> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    await c.endAsync();
    return undefined;
  } catch (e) {
    return (e as { code?: number }).code;
  }
}

/** SUBACK return code for one filter (0-2 granted QoS, 128 refused). */
async function subackCode(c: mqtt.MqttClient, filter: string): Promise<number> {
  return new Promise((resolve, reject) => {
    c.subscribe(filter, { qos: 0 }, (err, granted) => {
      // mqtt.js reports a refused filter as an error carrying the SUBACK packet.
      const refused = (err as { packet?: { granted?: number[] } } | null)?.packet?.granted?.[0];
      if (typeof refused === 'number') resolve(refused);
      else if (!err && granted?.[0]) resolve(granted[0].qos);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/** Publish at QoS 1 and report whether the gateway acknowledged it or closed the connection. */
async function publishOutcome(c: mqtt.MqttClient, topic: string, payload: string): Promise<'acked' | 'closed'> {
  return new Promise((resolve) => {
    const onClose = (): void => resolve('closed');
    c.once('close', onClose);
    c.publish(topic, payload, { qos: 1 }, (err) => {
      if (!err) {
        c.off('close', onClose);
        resolve('acked');
      }
    });
  });
}

describe('MQTT users, passwords and ACLs', () => {
  let gw: TestGateway;
  let dir: string;
  const reading = (v: number): string => JSON.stringify({ ts: Date.now() - 1000, metrics: { temp_c: v } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'smartops-users-'));
    const usersFile = join(dir, 'users.yaml');
    userAdd(usersFile, 'line-2-plc', 'plc-password-2', ['--machines', 'press-02,press-03', '--subscribe', 'machines/press-02/alerts,plant/line-2/#']);
    userAdd(usersFile, 'press-04', 'press-04-password');
    gw = await startTestGateway({
      mqtt: {
        allowAnonymous: false,
        usersFile,
        users: [
          { username: 'press-01', passwordHash: await hashPassword('press-01-password') },
          { username: 'dashboard', passwordHash: await hashPassword('dashboard-password'), machines: ['none'], subscribe: ['machines/+/telemetry'] },
        ],
      },
    });
  });
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the users file written by `user add` holds scrypt hashes, never the password', () => {
    const text = readFileSync(join(dir, 'users.yaml'), 'utf8');
    expect(text).toContain('passwordHash: scrypt$');
    expect(text).not.toContain('plc-password-2');
  });

  it('refuses a wrong password, an unknown user and an anonymous client, and counts each', async () => {
    const before = await scrape(gw.httpUrl);
    // CONNACK return codes (MQTT 3.1.1 table 3.1): 4 bad user name or password, 5 not authorized.
    expect(await refusal(gw.mqttUrl, { username: 'press-01', password: 'wrong-password' })).toBe(4);
    expect(await refusal(gw.mqttUrl, { username: 'press-01' })).toBe(4);
    expect(await refusal(gw.mqttUrl, { username: 'nobody', password: 'press-01-password' })).toBe(4);
    expect(await refusal(gw.mqttUrl, { username: 'line-2-plc', password: 'press-01-password' })).toBe(4);
    expect(await refusal(gw.mqttUrl, {})).toBe(5);
    const after = await scrape(gw.httpUrl);
    const d = (reason: string): number => sample(after, 'smartops_mqtt_auth_failures_total', { reason }) - sample(before, 'smartops_mqtt_auth_failures_total', { reason });
    expect(d('bad_credentials')).toBe(4);
    expect(d('anonymous_not_allowed')).toBe(1);
    // The broker (aedes 1.x) speaks MQTT 3.1 and 3.1.1; MQTT 5 clients are refused with
    // 1 (unacceptable protocol version) before any credential is looked at.
    expect(await refusal(gw.mqttUrl, { username: 'press-01', password: 'press-01-password', protocolVersion: 5 })).toBe(1);
  });

  it('a device publishes under its own machines/<id>/ (users from config and from the users file)', async () => {
    for (const [user, pass, machine] of [
      ['press-01', 'press-01-password', 'press-01'],
      ['line-2-plc', 'plc-password-2', 'press-02'],
      ['line-2-plc', 'plc-password-2', 'press-03'],
      ['press-04', 'press-04-password', 'press-04'],
    ] as const) {
      const c = await mqtt.connectAsync(gw.mqttUrl, { username: user, password: pass, reconnectPeriod: 0 });
      expect(await publishOutcome(c, `machines/${machine}/telemetry`, reading(1))).toBe('acked');
      await c.endAsync();
      await waitFor(async () => (await getJson<{ readings: unknown[] }>(`${gw.httpUrl}/api/v1/machines/${machine}/readings`)).body.readings.length === 1, 5000, `${machine} stored`);
    }
  });

  it('a device publishing under another machine’s topic is disconnected, counted, and nothing is stored', async () => {
    const before = await scrape(gw.httpUrl);
    for (const topic of ['machines/press-09/telemetry', 'machines/press-01x/telemetry', 'machines/press-01/alerts', '$SYS/fake/heartbeat', 'other/topic']) {
      const c = await mqtt.connectAsync(gw.mqttUrl, { username: 'press-01', password: 'press-01-password', reconnectPeriod: 0 });
      expect(await publishOutcome(c, topic, reading(2)), topic).toBe('closed');
      c.end(true);
    }
    const after = await scrape(gw.httpUrl);
    expect(sample(after, 'smartops_mqtt_auth_failures_total', { reason: 'publish_denied' }) - sample(before, 'smartops_mqtt_auth_failures_total', { reason: 'publish_denied' })).toBe(5);
    expect(sample(after, 'smartops_messages_rejected_total', { reason: 'not_authorized' }) - sample(before, 'smartops_messages_rejected_total', { reason: 'not_authorized' })).toBe(5);
    expect((await getJson(`${gw.httpUrl}/api/v1/machines/press-09`)).status).toBe(404);
    const rejects = await getJson<{ rejects: { reason: string; topic: string }[] }>(`${gw.httpUrl}/api/v1/rejects?limit=5`);
    expect(rejects.body.rejects.map((r) => r.reason)).toEqual(Array(5).fill('not_authorized'));
  });

  it('subscriptions only where allowed: refused filters get SUBACK 0x80 and are counted, allowed ones deliver', async () => {
    const before = await scrape(gw.httpUrl);
    const plc = await mqtt.connectAsync(gw.mqttUrl, { username: 'line-2-plc', password: 'plc-password-2', reconnectPeriod: 0 });
    const outcomes: Record<string, number> = {};
    for (const f of ['machines/press-02/alerts', 'plant/line-2/status', '#', 'machines/+/telemetry', 'machines/press-01/alerts', 'plant/#']) outcomes[f] = await subackCode(plc, f);
    expect(outcomes).toEqual({
      'machines/press-02/alerts': 0,
      'plant/line-2/status': 0,
      '#': 128,
      'machines/+/telemetry': 128,
      'machines/press-01/alerts': 128,
      'plant/#': 128,
    });
    // MQTT-3.9.3: a refused filter does not cost the connection.
    expect(plc.connected).toBe(true);
    const press01 = await mqtt.connectAsync(gw.mqttUrl, { username: 'press-01', password: 'press-01-password', reconnectPeriod: 0 });
    expect(await subackCode(press01, 'machines/press-01/telemetry')).toBe(128);
    const after = await scrape(gw.httpUrl);
    expect(sample(after, 'smartops_mqtt_auth_failures_total', { reason: 'subscribe_denied' }) - sample(before, 'smartops_mqtt_auth_failures_total', { reason: 'subscribe_denied' })).toBe(5);

    // An allowed subscription receives: the dashboard user reads every machine's telemetry.
    const dash = await mqtt.connectAsync(gw.mqttUrl, { username: 'dashboard', password: 'dashboard-password', reconnectPeriod: 0 });
    await dash.subscribeAsync('machines/+/telemetry');
    const got = new Promise<string>((resolve) => dash.once('message', (t) => resolve(t)));
    await press01.publishAsync('machines/press-01/telemetry', reading(3), { qos: 1 });
    expect(await got).toBe('machines/press-01/telemetry');
    await Promise.all([plc.endAsync(), press01.endAsync(), dash.endAsync()]);
  });
});

describe('password guessing', () => {
  it('after 10 failed logins from one address within a minute, even the right password is refused unchecked (counted throttled)', async () => {
    const gw = await startTestGateway({ mqtt: { allowAnonymous: false, users: [{ username: 'press-01', passwordHash: await hashPassword('press-01-password') }] } });
    try {
      for (let i = 0; i < 10; i++) expect(await refusal(gw.mqttUrl, { username: 'press-01', password: `guess-${i}` })).toBe(4);
      expect(await refusal(gw.mqttUrl, { username: 'press-01', password: 'press-01-password' })).toBe(5);
      const s = await scrape(gw.httpUrl);
      expect(sample(s, 'smartops_mqtt_auth_failures_total', { reason: 'bad_credentials' })).toBe(10);
      expect(sample(s, 'smartops_mqtt_auth_failures_total', { reason: 'throttled' })).toBe(1);
    } finally {
      await gw.stop();
    }
  });

  it('LoginThrottle: per address, forgets after the window, bounded in size', () => {
    const t = new LoginThrottle({ maxFailures: 3, windowMs: 1000, maxAddresses: 2 });
    for (let i = 0; i < 3; i++) t.failed('10.0.0.1', 0);
    expect(t.blocked('10.0.0.1', 500)).toBe(true);
    expect(t.blocked('10.0.0.2', 500)).toBe(false);
    expect(t.blocked('10.0.0.1', 1000)).toBe(false);
    t.failed('a', 0);
    t.failed('b', 0);
    t.failed('c', 0);
    expect(t.tracked).toBe(2);
  });
});

describe('MqttAcl.canPublish on edge-case topics', () => {
  const acl = new MqttAcl([], true);
  const device: DeviceIdentity = { username: 'press-1', anonymous: false, machines: new Set(['press-1', '']), publish: ['plant/+/status'], subscribe: [] };
  const anonymous: DeviceIdentity = { username: null, anonymous: true, machines: new Set(), publish: [], subscribe: ['#'] };
  it.each([
    ['machines/press-1/telemetry', true, true],
    ['machines/press-1/', true, true],
    ['machines/press-1/a/b', true, true],
    ['machines/press-1', false, true], // no third level: not under machines/<id>/
    ['machines/press-2/telemetry', false, true],
    ['machines/press-1x/telemetry', false, true],
    ['machines//telemetry', true, true], // an empty id is a level like any other ('' is in the device's set here)
    ['machines/press-1/alerts', false, false], // the gateway's own alert topics, for everyone
    ['machines/press-1/alerts/x', false, false],
    ['machines//alerts', false, false],
    ['machines/press-1/alertsx', true, true],
    ['machines/press-1/x/alerts', true, true],
    ['plant/a/status', true, true],
    ['plant/a/b/status', false, true],
    ['$SYS/broker/x', false, false],
    ['machinesx/press-1/telemetry', false, true],
  ])('%s: device %s, anonymous %s', (topic, forDevice, forAnonymous) => {
    expect(acl.canPublish(device, topic)).toBe(forDevice);
    expect(acl.canPublish(anonymous, topic)).toBe(forAnonymous);
  });
});

describe('anonymous access', () => {
  function capture(): { logger: pino.Logger; lines: () => string } {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    return { logger: pino({ level: 'info' }, sink), lines: () => out };
  }

  it('warns loudly when anonymous access is on for a non-loopback address, and not on loopback', async () => {
    const exposed = capture();
    const gw1 = await startGateway(testConfig({ mqtt: { host: '0.0.0.0', allowAnonymous: true } }), { logger: exposed.logger });
    await gw1.stop();
    expect(exposed.lines()).toMatch(/ANONYMOUS MQTT ACCESS IS ON FOR A NON-LOOPBACK ADDRESS/);
    const local = capture();
    const gw2 = await startGateway(testConfig({ mqtt: { host: '127.0.0.1', allowAnonymous: true } }), { logger: local.logger });
    await gw2.stop();
    expect(local.lines()).not.toMatch(/ANONYMOUS/);
  });

  it('anonymous clients are refused unless mqtt.allowAnonymous is on (it is off by default)', async () => {
    const off = await startTestGateway({ mqtt: { allowAnonymous: false } });
    const on = await startTestGateway({ mqtt: { allowAnonymous: true } });
    try {
      expect(await refusal(off.mqttUrl, {})).toBe(5);
      expect(await refusal(on.mqttUrl, {})).toBeUndefined();
    } finally {
      await Promise.all([off.stop(), on.stop()]);
    }
    const { configSchema } = await import('../../gateway/src/config/schema.js');
    expect(configSchema.parse({}).mqtt.allowAnonymous).toBe(false);
  });
});
