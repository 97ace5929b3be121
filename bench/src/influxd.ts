/**
 * A real InfluxDB 1.x (Debian `influxd`) on free loopback ports in a temp dir, for the benchmark.
 * Same approach as test/helpers/influxd.ts (which imports vitest, so it is not loaded outside tests).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './procstat.js';

export interface BenchInfluxd {
  url: string;
  pid(): number | undefined;
  query(q: string, db?: string): Promise<{ columns: string[]; values: unknown[][]; tags?: Record<string, string> }[]>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export function influxdVersion(): string | null {
  const r = spawnSync(process.env.INFLUXD_BIN ?? 'influxd', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export async function startBenchInfluxd(): Promise<BenchInfluxd> {
  const bin = process.env.INFLUXD_BIN ?? 'influxd';
  const dir = mkdtempSync(join(tmpdir(), 'smartops-bench-influxd-'));
  const port = await freePort();
  const rpcPort = await freePort();
  const conf = join(dir, 'influxdb.conf');
  // Defaults otherwise (cache, WAL fsync), as a user would run it; logging off so it costs nothing.
  writeFileSync(
    conf,
    `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
  logging-enabled = false
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
[logging]
  level = "warn"
`,
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let stderr = '';
  const launch = async (): Promise<void> => {
    const c = spawn(bin, ['-config', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child = c;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`influxd exited with code ${c.exitCode}: ${stderr}`);
      try {
        const res = await fetch(`${url}/ping`);
        if (res.status === 204) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`influxd did not answer /ping within 30 s: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
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
  return {
    url,
    pid: () => child?.pid,
    async query(q, db) {
      const params = new URLSearchParams({ q, epoch: 'ms' });
      if (db) params.set('db', db);
      const res = await fetch(`${url}/query?${params.toString()}`, { method: 'POST', signal: AbortSignal.timeout(60_000) });
      const body = (await res.json()) as { results?: { series?: { columns: string[]; values: unknown[][]; tags?: Record<string, string> }[]; error?: string }[]; error?: string };
      if (!res.ok || body.error) throw new Error(`InfluxQL failed (${res.status}): ${body.error ?? JSON.stringify(body).slice(0, 300)}`);
      const out: { columns: string[]; values: unknown[][]; tags?: Record<string, string> }[] = [];
      for (const r of body.results ?? []) {
        if (r.error) throw new Error(`InfluxQL error: ${r.error}`);
        out.push(...(r.series ?? []));
      }
      return out;
    },
    pause: halt,
    resume: launch,
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
