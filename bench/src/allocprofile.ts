/**
 * Summarise a V8 sampling heap profile (`.heapprofile`, from bench/src/alloc-sampler.mjs or
 * `node --heap-prof`): sampled bytes allocated per function (with its caller, since a builtin such
 * as JSON.parse allocates on behalf of the JavaScript frame that called it) and per package.
 * Usage: `npx tsx bench/src/allocprofile.ts file.heapprofile [top]`.
 * Format: head = { callFrame, selfSize, children[] } (Chrome DevTools Protocol HeapProfiler.SamplingHeapProfile).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { groupOf } from './cpuprofile.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

function frameName(f: CallFrame): string {
  const rel = /\/((?:gateway|simulators|bench|\.build)\/.*)$/.exec(f.url) ?? /node_modules\/(.*)$/.exec(f.url);
  const where = f.url ? `${rel ? rel[1] : f.url}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
}

export function summariseHeap(head: HeapNode, topN = 30): string {
  const byFn = new Map<string, number>();
  const byGroup = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, parent: CallFrame | null): void => {
    if (n.selfSize > 0) {
      total += n.selfSize;
      const key = `${frameName(n.callFrame)}  <- ${parent ? frameName(parent) : '-'}`;
      byFn.set(key, (byFn.get(key) ?? 0) + n.selfSize);
      const g = groupOf(n.callFrame.url, n.callFrame.functionName);
      byGroup.set(g, (byGroup.get(g) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, n.callFrame);
  };
  walk(head, null);
  const pct = (b: number): string => `${((b / total) * 100).toFixed(1).padStart(5)}%`;
  const mb = (b: number): string => `${(b / 1048576).toFixed(1).padStart(8)} MB`;
  const lines = [`sampled allocations: ${(total / 1048576).toFixed(1)} MB`, '', 'by package / module:'];
  for (const [g, b] of [...byGroup].sort((a, c) => c[1] - a[1]).slice(0, 20)) lines.push(`  ${pct(b)} ${mb(b)}  ${g}`);
  lines.push('', 'by function (<- caller):');
  for (const [f, b] of [...byFn].sort((a, c) => c[1] - a[1]).slice(0, topN)) lines.push(`  ${pct(b)} ${mb(b)}  ${f}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: npx tsx bench/src/allocprofile.ts file.heapprofile [top]\n');
    process.exit(2);
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode };
  process.stdout.write(`${summariseHeap(p.head, Number(process.argv[3] ?? 30))}\n`);
}
