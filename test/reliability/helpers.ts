/**
 * Helpers for the reliability tests: the gateway as a real child process (the way it runs in
 * production, so SIGKILL and SIGTERM mean what they mean), a recording QoS 1 publisher, and
 * readers for /metrics and InfluxDB.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Influxd } from '../helpers/influxd.js';
import { waitFor } from '../helpers/gateway.js';
import { Outbox, type OutboxOptions } from '../../gateway/src/outbox/outbox.js';

const root = new URL('../..', import.meta.url).pathname;

const made: string[] = [];

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `smartops-rel-${prefix}-`));
  made.push(d);
  return d;
}

/** Delete the temp dirs made by tempDir() (call after the processes using them have exited). */
export function removeTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Outboxes a test opened in-process; `closeOutboxes` (run it in afterEach) closes them and removes the temp dirs. */
export const openedOutboxes: Outbox[] = [];

/** An outbox with the tests' defaults (no fsync, 1 ms group commits, 1 MiB budget, reject policy). */
export function openOutbox(dir: string, o: Partial<OutboxOptions> = {}): Outbox {
  const box = new Outbox({ dir, fsync: 'os', commitIntervalMs: 1, maxBytes: 1 << 20, fullPolicy: 'reject', fullWaitMs: 5000, ...o });
  openedOutboxes.push(box);
  return box;
}

export function closeOutboxes(): void {
  for (const o of openedOutboxes.splice(0)) o.close();
  removeTempDirs();
}

export interface ChildGateway {
  httpUrl: string;
  mqttUrl: string;
  mqttPort: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last log lines (JSON), for failure messages. */
  logs(): string;
  /** Parsed JSON log lines seen so far. */
  logLines(): Record<string, unknown>[];
  kill(signal: NodeJS.Signals): void;
}

export interface SpawnOptions {
  dataDir: string;
  influxUrl?: string;
  database?: string;
  /** `--set key=value` settings. */
  sets?: string[];
  /** Reuse an MQTT port (restart with the same address, so publishers can reconnect). */
  mqttPort?: number;
}

/**
 * Start `node --import tsx gateway/src/cli.ts` on loopback with free ports (port 0; the real
 * ports are read from the "smartops-gateway started" log line).
 */
export async function spawnGateway(o: SpawnOptions): Promise<ChildGateway> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '', SMARTOPS_LOG_LEVEL: 'info', SMARTOPS_LOG_PRETTY: 'never' };
  for (const k of Object.keys(env)) if (k.startsWith('SMARTOPS_') && k !== 'SMARTOPS_LOG_LEVEL' && k !== 'SMARTOPS_LOG_PRETTY') delete env[k];
  const args = [
    '--import',
    'tsx',
    join(root, 'gateway/src/cli.ts'),
    '--data-dir',
    o.dataDir,
    '--mqtt-host',
    '127.0.0.1',
    '--mqtt-port',
    String(o.mqttPort ?? 0),
    '--http-host',
    '127.0.0.1',
    '--http-port',
    '0',
    '--allow-anonymous',
    // Detection is not under test here; keep the two shared cores for the pipeline.
    '--set',
    'detection.enabled=false',
    ...(o.influxUrl ? ['--influx-url', o.influxUrl, '--influx-database', o.database ?? 'smartops'] : []),
    ...(o.sets ?? []).flatMap((s) => ['--set', s]),
  ];
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const parsed: Record<string, unknown>[] = [];
  let partial = '';
  const onData = (d: Buffer): void => {
    partial += d.toString('utf8');
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (!l.trim()) continue;
      lines.push(l);
      if (lines.length > 400) lines.shift();
      try {
        parsed.push(JSON.parse(l) as Record<string, unknown>);
        if (parsed.length > 5000) parsed.shift();
      } catch {
        // not JSON (e.g. a Node warning on stderr)
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const logs = (): string => lines.slice(-60).join('\n');
  const started = await waitFor(
    () => {
      if (gone) throw new Error(`gateway exited during start-up:\n${logs()}`);
      return parsed.find((l) => l.msg === 'smartops-gateway started') as { mqtt: string; http: string } | undefined;
    },
    40000,
    'gateway start-up',
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${logs()}`);
  });
  const mqttPort = Number(started.mqtt.split(':').pop());
  return {
    httpUrl: `http://${started.http}`,
    mqttUrl: `mqtt://${started.mqtt}`,
    mqttPort,
    child,
    exited,
    logs,
    logLines: () => parsed,
    kill: (sig) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
  };
}

/** Value of a Prometheus sample (sum over all series matching the labels given). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) ls[kv[1] as string] = kv[2] as string;
    if (Object.entries(labels).every(([k, v]) => ls[k] === v)) {
      sum += Number(m[4]);
      found = true;
    }
  }
  return found ? sum : Number.NaN;
}

export async function metrics(httpUrl: string): Promise<string> {
  const res = await fetch(`${httpUrl}/metrics`);
  return res.text();
}

export interface OutboxState {
  depth: number;
  bytes: number;
  maxBytes: number;
  oldestAgeS: number | null;
  quarantined: number;
}

export async function outboxState(httpUrl: string): Promise<OutboxState> {
  const res = await fetch(`${httpUrl}/api/v1/outbox`);
  return (await res.json()) as OutboxState;
}

/** One published reading: `seq` is also written as a metric so InfluxDB holds it. */
export interface SentReading {
  machine: string;
  seq: number;
  ts: number;
  value: number;
}

export function readingValue(machine: string, seq: number): number {
  // Exact in binary floating point and distinct per reading, so equality checks are exact.
  return seq * 0.25 + machine.length;
}

/**
 * A QoS 1 publisher that remembers every reading it got a PUBACK for. Batches of `perMessage`
 * readings per message; at most `window` messages unacknowledged at a time.
 */
export class RecordingPublisher {
  readonly acked = new Map<string, SentReading>();
  readonly sent = new Map<string, SentReading>();
  private seq = 0;
  private inflight = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  errors = 0;
  messagesAcked = 0;

  constructor(
    readonly client: mqtt.MqttClient,
    readonly machine: string,
    readonly t0: number,
    readonly opts: { perMessage?: number; window?: number; maxMessages?: number; pauseMs?: number } = {},
  ) {}

  static async connect(url: string, machine: string, t0: number, opts: RecordingPublisher['opts'] & { reconnect?: boolean } = {}): Promise<RecordingPublisher> {
    const client = await mqtt.connectAsync(url, { clientId: `rel-${machine}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: opts.reconnect ? 200 : 0, connectTimeout: 5000 });
    client.on('error', () => undefined);
    return new RecordingPublisher(client, machine, t0, opts);
  }

  get messagesSent(): number {
    return this.seq / (this.opts.perMessage ?? 1);
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const per = this.opts.perMessage ?? 1;
    const window = this.opts.window ?? 20;
    const max = this.opts.maxMessages ?? Number.POSITIVE_INFINITY;
    let messages = 0;
    while (this.running && messages < max) {
      if (this.inflight >= window || !this.client.connected) {
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const batch: SentReading[] = [];
      for (let i = 0; i < per; i++) {
        const seq = this.seq++;
        // One millisecond per reading: unique timestamps per machine, so each is its own point.
        batch.push({ machine: this.machine, seq, ts: this.t0 + seq, value: readingValue(this.machine, seq) });
      }
      for (const r of batch) this.sent.set(`${r.machine}/${r.seq}`, r);
      const payload = JSON.stringify({ readings: batch.map((r) => ({ ts: r.ts, seq: r.seq, metrics: { v: r.value, seq: r.seq } })) });
      this.inflight++;
      messages++;
      this.client.publish(`machines/${this.machine}/telemetry`, payload, { qos: 1 }, (err) => {
        this.inflight--;
        if (err) {
          this.errors++;
          return;
        }
        this.messagesAcked++;
        for (const r of batch) this.acked.set(`${r.machine}/${r.seq}`, r);
      });
      if (this.opts.pauseMs) await new Promise((r) => setTimeout(r, this.opts.pauseMs));
      else if (messages % 10 === 0) await new Promise((r) => setImmediate(r));
    }
  }

  /** Resolves when maxMessages have been published (not necessarily acknowledged). */
  finished(): Promise<void> {
    return this.loop;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Wait until no message is unacknowledged (or the timeout passes). */
  async settle(timeoutMs = 20000): Promise<void> {
    await waitFor(() => this.inflight === 0, timeoutMs, `${this.machine}: all messages acknowledged (${this.inflight} still waiting)`);
  }

  async end(): Promise<void> {
    this.running = false;
    await this.client.endAsync(true).catch(() => undefined);
  }
}

export interface InfluxPoint {
  time: string;
  machine: string;
  v: number;
  seq: number;
}

/** Every telemetry point of the given machines, oldest first. */
export async function influxPoints(influx: Influxd, db: string, machines: string[]): Promise<InfluxPoint[]> {
  const where = machines.map((m) => `machine = '${m}'`).join(' OR ');
  const rows = await influx.query(`SELECT v, seq, machine FROM telemetry WHERE ${where} ORDER BY time`, db);
  return rows as unknown as InfluxPoint[];
}

/** Assert-friendly summary: points missing from InfluxDB, values that differ, and duplicates. */
export function compare(expected: Iterable<SentReading>, points: InfluxPoint[]): { missing: string[]; wrong: string[]; duplicates: string[] } {
  const seen = new Map<string, InfluxPoint>();
  const duplicates: string[] = [];
  for (const p of points) {
    const key = `${p.machine}/${p.seq}`;
    if (seen.has(key)) duplicates.push(key);
    seen.set(key, p);
  }
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const r of expected) {
    const key = `${r.machine}/${r.seq}`;
    const p = seen.get(key);
    if (!p) missing.push(key);
    else if (p.v !== r.value || Date.parse(p.time) !== r.ts) wrong.push(`${key}: got v=${p.v} at ${p.time}, sent v=${r.value} at ${new Date(r.ts).toISOString()}`);
  }
  return { missing: missing.slice(0, 20), wrong: wrong.slice(0, 20), duplicates: duplicates.slice(0, 20) };
}

export async function waitForDrain(httpUrl: string, timeoutMs = 30000): Promise<void> {
  await waitFor(async () => (await outboxState(httpUrl)).depth === 0, timeoutMs, 'outbox drained to 0');
}
