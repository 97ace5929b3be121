/** Process figures from /proc (Linux): resident memory and CPU seconds of a pid; free ports; host facts. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSample {
  rssBytes: number;
  /** Peak resident set (VmHWM) since the process started. */
  hwmBytes: number;
  /** user + system CPU seconds since the process started. */
  cpuSeconds: number;
}

/** null when the process is gone. */
export function procSample(pid: number): ProcSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    };
    // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks, counted after the ")" of comm.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return { rssBytes: kb('VmRSS'), hwmBytes: kb('VmHWM'), cpuSeconds: (utime + stime) / CLK_TCK };
  } catch {
    return null;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export function hostFacts(dir: string): Record<string, unknown> {
  const sh = (cmd: string, args: string[]): string | null => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const df = sh('df', ['-h', '--output=source,fstype,size,avail', dir]);
  const loadavg = readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).map(Number);
  return {
    nproc: Number(sh('nproc', [])) || cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    disk: df ? df.split('\n').slice(-1)[0]?.replace(/\s+/g, ' ') : null,
    kernel: sh('uname', ['-sr']),
    node: process.version,
    mosquitto: (() => {
      const r = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
      return r.error ? null : (`${r.stdout}${r.stderr}`.split('\n')[0] ?? null);
    })(),
    loadAverageAtStart: loadavg,
  };
}

export function loadAverage(): number[] {
  return readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).map(Number);
}

/** Whole-machine CPU seconds used (all cores), from the first line of /proc/stat (user nice system idle iowait irq softirq steal). */
export function systemBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}
