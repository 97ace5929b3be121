/**
 * Writes dashboards/json/*.json from dashboards/src/dashboards.ts.
 *
 *   npx tsx dashboards/src/build.ts          # regenerate the committed JSON
 *   npx tsx dashboards/src/build.ts --check  # exit 1 if the committed JSON is out of date
 *
 * The JSON is committed because Grafana provisioning reads it directly (no build step on the
 * mini PC); the test suite fails when it drifts from this source.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allDashboards } from './dashboards.js';
import { toJson } from './grafana.js';

export const JSON_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'json');

/** File name -> exact file text (2-space indent, trailing newline). */
export function renderAll(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [file, d] of Object.entries(allDashboards())) out[file] = `${JSON.stringify(toJson(d), null, 2)}\n`;
  return out;
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const rendered = renderAll();
  let stale = 0;
  mkdirSync(JSON_DIR, { recursive: true });
  for (const [file, text] of Object.entries(rendered)) {
    const path = join(JSON_DIR, file);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === text) continue;
    if (check) {
      console.error(`dashboards/json/${file} is out of date: run npx tsx dashboards/src/build.ts`);
      stale++;
    } else {
      writeFileSync(path, text);
      console.log(`wrote dashboards/json/${file}`);
    }
  }
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
