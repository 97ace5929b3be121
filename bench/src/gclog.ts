/**
 * Summarise a gateway's `--trace-gc-nvp` output (one line per collection, key=value pairs) over the
 * busiest 10 s of the log: collections per second, main-thread pause, bytes promoted to the old
 * generation and bytes that survived each scavenge. Promotion is what the old generation's marking
 * and sweeping (V8's helper threads) pay for later, so it tells a change in what the pipeline keeps
 * alive apart from the noise of CPU figures on a shared machine.
 *
 *   BENCH_GC_LOG=/tmp/gc.log npm run bench -- --quick --only profile --profile-batch 50 \
 *     --profile-rate 40000 --node-flags="--trace-gc-nvp"
 *   npx tsx bench/src/gclog.ts /tmp/gc.log
 *
 * Collections of heaps under 20 MB (the outbox writer thread's own isolate) are left out.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Gc {
  atMs: number;
  pauseMs: number;
  kind: string;
  promoted: number;
  survived: number;
}

export function parseGcLog(text: string): Gc[] {
  const out: Gc[] = [];
  for (const line of text.split('\n')) {
    const head = /\s(\d+) ms: pause=([\d.]+) .*?gc=(\w+)/.exec(line);
    if (!head) continue;
    const kv = new Map<string, string>();
    for (const m of line.matchAll(/(\S+?)=(\S+)/g)) kv.set(m[1] as string, m[2] as string);
    if (Number(kv.get('total_size_after') ?? 0) < 20e6) continue;
    out.push({ atMs: Number(head[1]), pauseMs: Number(head[2]), kind: head[3] as string, promoted: Number(kv.get('promoted') ?? 0), survived: Number(kv.get('new_space_survived') ?? 0) });
  }
  return out;
}

export function summarise(gcs: Gc[], windowMs = 10_000): string {
  let best: Gc[] = [];
  for (const g of gcs) {
    const w = gcs.filter((x) => x.atMs >= g.atMs && x.atMs < g.atMs + windowMs);
    if (w.length > best.length) best = w;
  }
  if (best.length < 2) return 'fewer than two collections in the log';
  const span = ((best[best.length - 1] as Gc).atMs - (best[0] as Gc).atMs) / 1000;
  const sc = best.filter((g) => g.kind === 's');
  const mc = best.filter((g) => g.kind === 'mc');
  const sum = (xs: Gc[], f: (g: Gc) => number): number => xs.reduce((a, g) => a + f(g), 0);
  const r = (x: number, d = 1): string => x.toFixed(d);
  return [
    `window ${r(span)} s`,
    `scavenges ${r(sc.length / span)}/s, pause ${r(sum(sc, (g) => g.pauseMs) / span, 0)} ms/s, survived ${r(sum(sc, (g) => g.survived) / Math.max(1, sc.length) / 1e6)} MB each`,
    `promoted ${r(sum(sc, (g) => g.promoted) / span / 1e6, 2)} MB/s`,
    `mark-compacts ${r(mc.length / span, 2)}/s, pause ${r(sum(mc, (g) => g.pauseMs) / span, 0)} ms/s`,
  ].join('; ');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: npx tsx bench/src/gclog.ts <trace-gc-nvp log>\n');
    process.exit(2);
  }
  process.stdout.write(`${summarise(parseGcLog(readFileSync(file, 'utf8')))}\n`);
}
