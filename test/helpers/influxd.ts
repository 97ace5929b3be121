/**
 * Starts a real InfluxDB 1.x server (Debian's `influxd`) in a temp dir on free loopback ports.
 * Where influxd is not installed, tests are skipped with a loud notice; under CI=true that is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe } from 'vitest';
import { freePort } from './ports.js';

export type Row = Record<string, unknown>;

export interface Influxd {
  url: string;
  port: number;
  dataDir: string;
  query(influxql: string, db?: string): Promise<Row[]>;
  write(lineProtocol: string, db: string): Promise<void>;
  createDatabase(db: string): Promise<void>;
  /** Stop the process but keep its data, so `start()` can bring the same server back (outage tests). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export const INFLUXD_BIN = process.env.INFLUXD_BIN ?? 'influxd';

export function influxdAvailable(): boolean {
  const r = spawnSync(INFLUXD_BIN, ['version'], { encoding: 'utf8' });
  return r.status === 0;
}

const available = influxdAvailable();
if (!available) {
  const msg = `\n*** influxd not found: InfluxDB integration tests are ${process.env.CI ? 'FAILING (CI=true)' : 'SKIPPED'}. Install it with: sudo apt-get install influxdb ***\n`;
  process.stderr.write(msg);
}

/** `describe` when influxd is installed; otherwise `describe.skip` locally and a failing suite in CI. */
export const describeWithInfluxd: typeof describe = (available || process.env.CI
  ? describe
  : describe.skip) as typeof describe;

export function requireInfluxdInCi(): void {
  if (!available && process.env.CI) throw new Error('influxd is required in CI: apt-get install -y influxdb');
}

async function waitForPing(url: string, child: ChildProcess, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`influxd exited with code ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/ping`);
      if (res.status === 204) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`influxd did not answer /ping within ${timeoutMs} ms`);
}

export async function startInfluxd(): Promise<Influxd> {
  requireInfluxdInCi();
  const dir = mkdtempSync(join(tmpdir(), 'smartops-influxd-'));
  const port = await freePort();
  const rpcPort = await freePort();
  const conf = join(dir, 'influxdb.conf');
  writeFileSync(
    conf,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
`,
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  const launch = async (): Promise<void> => {
    const c = spawn(INFLUXD_BIN, ['-config', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child = c;
    try {
      await waitForPing(url, c);
    } catch (e) {
      c.kill('SIGKILL');
      throw new Error(`${(e as Error).message}\n${stderr}`);
    }
  };
  const halt = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
      setTimeout(() => c.kill('SIGKILL'), 5000).unref();
    });
  };
  await launch();

  const query = async (q: string, db?: string): Promise<Row[]> => {
    const params = new URLSearchParams({ q, epoch: '' });
    params.delete('epoch');
    if (db) params.set('db', db);
    const res = await fetch(`${url}/query?${params.toString()}`, { method: 'POST' });
    const body = (await res.json()) as {
      results?: { series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[]; error?: string }[];
      error?: string;
    };
    if (!res.ok || body.error) throw new Error(`InfluxQL failed (${res.status}): ${body.error ?? JSON.stringify(body)}`);
    const rows: Row[] = [];
    for (const result of body.results ?? []) {
      if (result.error) throw new Error(`InfluxQL error: ${result.error}`);
      for (const s of result.series ?? []) {
        for (const values of s.values) {
          const row: Row = { ...(s.tags ?? {}) };
          if (s.name) row._measurement = s.name;
          s.columns.forEach((c, i) => {
            row[c] = values[i];
          });
          rows.push(row);
        }
      }
    }
    return rows;
  };

  return {
    url,
    port,
    dataDir: dir,
    query,
    async write(lp: string, db: string) {
      const res = await fetch(`${url}/write?db=${encodeURIComponent(db)}&precision=ms`, { method: 'POST', body: lp });
      if (res.status !== 204) throw new Error(`write failed ${res.status}: ${await res.text()}`);
    },
    async createDatabase(db: string) {
      await query(`CREATE DATABASE "${db.replace(/"/g, '\\"')}"`);
    },
    pause: halt,
    resume: launch,
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
