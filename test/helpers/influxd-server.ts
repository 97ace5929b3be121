/**
 * A real InfluxDB 1.x server (Debian's `influxd`) in a temp dir on free loopback ports, for the
 * tests (test/helpers/influxd.ts adds the vitest parts) and the benchmark (bench/src/bench.ts).
 * No vitest import here, so the benchmark can load it outside a test run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export type Row = Record<string, unknown>;

export interface Series {
  name?: string;
  columns: string[];
  values: unknown[][];
  tags?: Record<string, string>;
}

export interface Influxd {
  url: string;
  port: number;
  dataDir: string;
  /** Process id while running (undefined while paused). */
  pid(): number | undefined;
  /** InfluxQL; one row per value, series tags merged in, times as RFC 3339 strings. */
  query(influxql: string, db?: string): Promise<Row[]>;
  /** InfluxQL; the series as InfluxDB returns them, times as epoch milliseconds. */
  series(influxql: string, db?: string): Promise<Series[]>;
  write(lineProtocol: string, db: string): Promise<void>;
  createDatabase(db: string): Promise<void>;
  /** Stop the process but keep its data, so `resume()` can bring the same server back (outages). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export interface InfluxdOptions {
  /** Turn off influxd's own logging (meta and warn-level log), so it costs nothing under load. */
  quiet?: boolean;
  /** How long start-up may take before /ping answers (default 30 s). */
  startTimeoutMs?: number;
}

export const INFLUXD_BIN = process.env.INFLUXD_BIN ?? 'influxd';

/** `influxd version` output, or null when influxd is not installed. */
export function influxdVersion(): string | null {
  const r = spawnSync(INFLUXD_BIN, ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

async function waitForPing(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
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

async function influxql(url: string, q: string, db: string | undefined, epochMs: boolean): Promise<Series[]> {
  const params = new URLSearchParams({ q });
  if (epochMs) params.set('epoch', 'ms');
  if (db) params.set('db', db);
  const res = await fetch(`${url}/query?${params.toString()}`, { method: 'POST', signal: AbortSignal.timeout(60_000) });
  const body = (await res.json()) as { results?: { series?: Series[]; error?: string }[]; error?: string };
  if (!res.ok || body.error) throw new Error(`InfluxQL failed (${res.status}): ${body.error ?? JSON.stringify(body).slice(0, 300)}`);
  const out: Series[] = [];
  for (const r of body.results ?? []) {
    if (r.error) throw new Error(`InfluxQL error: ${r.error}`);
    out.push(...(r.series ?? []));
  }
  return out;
}

export async function startInfluxdServer(opts: InfluxdOptions = {}): Promise<Influxd> {
  const dir = mkdtempSync(join(tmpdir(), 'smartops-influxd-'));
  const port = await freePort();
  const rpcPort = await freePort();
  const conf = join(dir, 'influxdb.conf');
  // Defaults otherwise (cache, WAL fsync), as a user would run it.
  writeFileSync(
    conf,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
${opts.quiet ? '  logging-enabled = false\n' : ''}[data]
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
${opts.quiet ? '[logging]\n  level = "warn"\n' : ''}`,
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
      await waitForPing(url, c, opts.startTimeoutMs ?? 30_000);
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
    const rows: Row[] = [];
    for (const s of await influxql(url, q, db, false)) {
      for (const values of s.values) {
        const row: Row = { ...(s.tags ?? {}) };
        if (s.name) row._measurement = s.name;
        s.columns.forEach((c, i) => {
          row[c] = values[i];
        });
        rows.push(row);
      }
    }
    return rows;
  };

  return {
    url,
    port,
    dataDir: dir,
    pid: () => child?.pid,
    query,
    series: (q, db) => influxql(url, q, db, true),
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
