/**
 * Test helpers for the simulator CLIs: a real mosquitto broker on a free loopback port, a real
 * mqtt.js subscriber, and the CLIs run as child processes through tsx.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort } from '../helpers/ports.js';

export const ROOT = resolve(import.meta.dirname, '../..');

export function hasMosquitto(): boolean {
  const r = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
  return r.error === undefined;
}

export interface Mosquitto {
  url: string;
  port: number;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`);
}

export async function startMosquitto(port?: number): Promise<Mosquitto> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'sim-mosq-'));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n`);
  const proc: ChildProcess = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await waitForPort(p);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${(e as Error).message}: ${err}`);
  }
  return {
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    async stop() {
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Received {
  topic: string;
  payload: string;
}

export async function subscribe(url: string, topic = 'machines/+/telemetry'): Promise<{ client: MqttClient; messages: Received[]; stop(): Promise<void> }> {
  const client = mqtt.connect(url, { clientId: `sim-test-sub-${process.pid}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 200 });
  const messages: Received[] = [];
  client.on('message', (t, p) => messages.push({ topic: t, payload: p.toString('utf8') }));
  await new Promise<void>((res, rej) => {
    client.once('connect', () => res());
    client.once('error', rej);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, messages, stop: () => client.endAsync() };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `simulators/src/cli/<name>.ts` with node + tsx; resolves when it exits. */
export function runCli(name: 'simulate' | 'replay', args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'simulators/src/cli', `${name}.ts`), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FORCE_COLOR: '0' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`${name} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

export async function waitUntil(fn: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `describe` when mosquitto is installed; otherwise skip with a loud notice (and fail under CI=true). */
export function mosquittoNotice(): boolean {
  const ok = hasMosquitto();
  if (!ok) {
    const msg = '\n*** mosquitto is not installed: simulator MQTT end-to-end tests are SKIPPED (apt-get install mosquitto) ***\n';
    if (process.env.CI === 'true') throw new Error(`${msg}CI=true: failing instead of skipping.`);
    process.stderr.write(msg);
  }
  return ok;
}
