/**
 * The outbox's writer thread failing is not silent: the outbox refuses what it had not committed
 * (no acknowledgement for it) and everything after, with SMARTOPS_OUTBOX_WORKER, and reports it
 * once; what was committed before stays on disk. The gateway then stops without acknowledging the
 * message: the command line (a real child process) logs the coded error and exits with code 1; the
 * library's startGateway leaves the process alone and rejects its `failed` promise.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { ErrorCodes, type GatewayError } from '../../gateway/src/errors.js';
import { validateConfig } from '../../gateway/src/config/load.js';
import { startGateway } from '../../gateway/src/main.js';
import type { Outbox, OutboxOptions } from '../../gateway/src/outbox/outbox.js';
import { closeOutboxes, openOutbox, openedOutboxes, tempDir } from '../reliability/helpers.js';
import { crashWorkerOnFirstAppend } from './fixtures/outbox-crash.js';

afterEach(closeOutboxes);

/** Each outbox here fsyncs every commit, as the product default does. */
const open = (dir: string, o: Partial<OutboxOptions> = {}): Outbox => openOutbox(dir, { fsync: 'always', fullWaitMs: 1000, ...o });

function readings(from: number, n: number): Reading[] {
  return Array.from({ length: n }, (_, i) => ({ machine: 'm1', ts: 1_700_000_000_000 + from + i, metrics: { v: from + i } }));
}

describe('outbox writer thread', () => {
  it('a crash refuses the group it held and every later append, reports once, and keeps what was committed', async () => {
    const dir = tempDir('ob-crash');
    const fatal: GatewayError[] = [];
    const box = open(dir, { onFatal: (e) => fatal.push(e) });
    await box.append(readings(0, 10));
    box.crashWorkerForTest();
    // Handed to the worker after the crash request: never committed, so never resolved.
    await expect(box.append(readings(10, 5))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_WORKER });
    await expect(box.append(readings(15, 1))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_WORKER });
    expect(() => box.ack(1)).toThrow(expect.objectContaining({ code: ErrorCodes.OUTBOX_WORKER }) as Error);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]?.code).toBe(ErrorCodes.OUTBOX_WORKER);
    expect(box.pendingReadings()).toBe(0);
    box.close();
    openedOutboxes.splice(0);
    const again = open(dir);
    expect(again.read(0, 100).map((e) => e.reading.metrics.v)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('groups of any size are stored whole, in order, with consecutive ids (multi-row inserts of 64, 32, ..., 1 rows)', async () => {
    const dir = tempDir('ob-chunks');
    const box = open(dir, { commitIntervalMs: 50 });
    // One group per size (appends made in one turn share a commit): sizes on, next to and past the
    // chunk sizes, plus one larger than two chunks of 64.
    const sizes = [1, 2, 3, 63, 64, 65, 127, 128, 129, 200];
    let from = 0;
    for (const n of sizes) {
      await box.append(readings(from, n));
      from += n;
    }
    // Several appends in one group: 5 + 70 + 1 rows committed together.
    await Promise.all([box.append(readings(from, 5)), box.append(readings(from + 5, 70)), box.append(readings(from + 75, 1))]);
    from += 76;
    box.close();
    openedOutboxes.splice(0);
    const again = open(dir);
    const rows = again.read(0, 10_000);
    expect(rows.map((e) => e.reading.metrics.v)).toEqual(Array.from({ length: from }, (_, i) => i));
    expect(rows.map((e) => e.reading.ts)).toEqual(Array.from({ length: from }, (_, i) => 1_700_000_000_000 + i));
    const first = (rows[0] as { id: number }).id;
    expect(rows.map((e) => e.id)).toEqual(Array.from({ length: from }, (_, i) => first + i));
    expect(again.stats().depth).toBe(from);
  });

  it('close commits the appends still pending, then ends the thread', async () => {
    const dir = tempDir('ob-close');
    const box = open(dir, { commitIntervalMs: 1000 });
    const done = Promise.all([box.append(readings(0, 3)), box.append(readings(3, 4))]);
    expect(box.pendingReadings()).toBe(7);
    box.close();
    await done;
    const again = open(dir);
    expect(again.stats().depth).toBe(7);
    await expect(box.append(readings(7, 1))).rejects.toMatchObject({ code: ErrorCodes.OUTBOX_CLOSED });
  });

  it('a gateway whose writer thread crashes does not acknowledge, logs SMARTOPS_OUTBOX_WORKER and exits 1', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const args = ['--import', 'tsx', '--import', './test/gateway/fixtures/outbox-crash-preload.ts', 'gateway/src/cli.ts'];
    const flags = ['--data-dir', tempDir('ob-gw-crash'), '--mqtt-host', '127.0.0.1', '--mqtt-port', '0', '--http-host', '127.0.0.1', '--http-port', '0', '--allow-anonymous', '--log-level', 'info'];
    const child = spawn(process.execPath, [...args, ...flags], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const t = setInterval(() => {
          // the start log line: "mqtt":"127.0.0.1:<port>"
          const m = /"mqtt":"127\.0\.0\.1:(\d+)"/.exec(out);
          if (m) {
            clearInterval(t);
            resolve(Number(m[1]));
          } else if (child.exitCode !== null) {
            clearInterval(t);
            reject(new Error(`gateway exited early: ${out}`));
          }
        }, 50);
      });
      const pub = await publishOne(port, 'crash-test');
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000))]);
      pub.client.end(true);
      expect(code).toBe(1);
      expect(pub.acked()).toBe(false);
      expect(out).toContain('SMARTOPS_OUTBOX_WORKER');
      expect(out).toContain('outbox writer thread failed');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('startGateway (the library) does not exit the process: it stops and `failed` rejects with SMARTOPS_OUTBOX_WORKER', async () => {
    const restore = crashWorkerOnFirstAppend();
    try {
      const config = validateConfig({
        dataDir: tempDir('ob-lib-crash'),
        log: { level: 'silent' },
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
        http: { host: '127.0.0.1', port: 0 },
      });
      const gw = await startGateway(config);
      const failed = gw.failed.then(
        () => 'resolved',
        (e: unknown) => (e as GatewayError).code,
      );
      const pub = await publishOne(gw.mqttPort, 'lib-crash');
      const outcome = await Promise.race([failed, new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000))]);
      pub.client.end(true);
      expect(outcome).toBe(ErrorCodes.OUTBOX_WORKER);
      expect(pub.acked()).toBe(false);
      // Stopped: its MQTT port no longer accepts connections.
      await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 2000 })).rejects.toBeTruthy();
    } finally {
      restore();
    }
  });
});

/** One QoS 1 reading from a fresh client; `acked()` says whether its PUBACK came. */
async function publishOne(port: number, clientId: string): Promise<{ client: mqtt.MqttClient; acked: () => boolean }> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, clientId });
  client.on('error', () => undefined);
  let acked = false;
  client.publish('machines/m1/telemetry', JSON.stringify({ ts: Date.now(), metrics: { v: 1 } }), { qos: 1 }, (err) => {
    if (!err) acked = true;
  });
  return { client, acked: () => acked };
}
