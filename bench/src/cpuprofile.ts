/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per package.
 * Usage as a script: `npx tsx bench/src/cpuprofile.ts file.cpuprofile [top] [fromEndMs toEndMs]`
 * (the optional window: only samples between those offsets before the end of the profile).
 * Format: nodes[] (id, callFrame, children), samples[] (node id per sample), timeDeltas[] (µs before
 * each sample), as written by V8's CpuProfiler (Chrome DevTools Protocol, Profiler.Profile).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileLine {
  name: string;
  where: string;
  group: string;
  selfMs: number;
  selfPct: number;
}
export interface ProfileSummary {
  totalMs: number;
  /** Share of samples in which the main thread was not idle. */
  busyPct: number;
  top: ProfileLine[];
  groups: { group: string; selfMs: number; selfPct: number }[];
}

/** Which package / part of the gateway a frame belongs to. */
export function groupOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1] as string;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const gw = /\/(gateway\/src\/[^/]+)\//.exec(url);
  if (gw) return gw[1] as string;
  const rel = /\/((?:gateway|simulators|bench)\/.*)$/.exec(url);
  return rel ? (rel[1] as string) : url;
}

function shortUrl(url: string): string {
  const nm = /node_modules\/(.*)$/.exec(url);
  if (nm) return nm[1] as string;
  const rel = /\/((?:gateway|simulators|bench|dist|\.build)\/.*)$/.exec(url);
  return rel ? (rel[1] as string) : url.replace(/^file:\/\//, '');
}

/**
 * `window` (optional): only samples taken between these offsets, in ms before the end of the profile
 * (e.g. { fromEndMs: 25_000, toEndMs: 5_000 } = the 20 s that ended 5 s before the process exited).
 */
export function summarise(profile: CpuProfile, topN = 25, window?: { fromEndMs: number; toEndMs: number }): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  let total = 0;
  let t = profile.startTime;
  const lo = window ? profile.endTime - window.fromEndMs * 1000 : -Infinity;
  const hi = window ? profile.endTime - window.toEndMs * 1000 : Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < lo || t > hi) continue;
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  }
  const lines = new Map<string, ProfileLine>();
  const groups = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const cf = n.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') idle += us;
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = `${name}\u0000${where}`;
    const g = groupOf(cf.url, name);
    const l = lines.get(key) ?? { name, where, group: g, selfMs: 0, selfPct: 0 };
    l.selfMs += us / 1000;
    lines.set(key, l);
    groups.set(g, (groups.get(g) ?? 0) + us / 1000);
  }
  const totalMs = total / 1000;
  // Shares are of the busy time (idle excluded), so they read as "where the CPU time of the main thread went".
  const busyMs = Math.max(1, totalMs - idle / 1000);
  const pct = (ms: number): number => Math.round((ms / busyMs) * 1000) / 10;
  const top = [...lines.values()]
    .filter((l) => l.name !== '(idle)')
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topN)
    .map((l) => ({ ...l, selfMs: Math.round(l.selfMs), selfPct: pct(l.selfMs) }));
  return {
    totalMs: Math.round(totalMs),
    busyPct: Math.round(((totalMs - idle / 1000) / totalMs) * 1000) / 10,
    top,
    groups: [...groups.entries()]
      .filter(([g]) => g !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, 20)
      .map(([group, ms]) => ({ group, selfMs: Math.round(ms), selfPct: pct(ms) })),
  };
}

export function summariseFile(path: string, topN = 25, window?: { fromEndMs: number; toEndMs: number }): ProfileSummary {
  return summarise(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, topN, window);
}

export function formatSummary(s: ProfileSummary): string {
  const out: string[] = [`profile: ${(s.totalMs / 1000).toFixed(1)} s sampled, main thread busy ${s.busyPct}%`, '', 'self time by package / module (% of busy time):'];
  for (const g of s.groups) out.push(`  ${g.selfPct.toFixed(1).padStart(5)}%  ${String(g.selfMs).padStart(6)} ms  ${g.group}`);
  out.push('', 'top functions by self time (% of busy time):');
  for (const l of s.top) out.push(`  ${l.selfPct.toFixed(1).padStart(5)}%  ${String(l.selfMs).padStart(6)} ms  ${l.name}  ${l.where}`);
  return out.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/src/cpuprofile.ts <file.cpuprofile> [top] [fromEndMs toEndMs]\n');
    process.exit(2);
  }
  const [from, to] = [process.argv[4], process.argv[5]].map((x) => (x === undefined ? undefined : Number(x)));
  const window = from !== undefined && to !== undefined ? { fromEndMs: from, toEndMs: to } : undefined;
  process.stdout.write(`${formatSummary(summariseFile(file, Number(process.argv[3] ?? 25), window))}\n`);
}
