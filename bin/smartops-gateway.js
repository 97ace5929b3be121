#!/usr/bin/env node
// Runs the compiled gateway (npm ci / npm install build it through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

const compiled = fileURLToPath(new URL('../dist/gateway/src/cli.js', import.meta.url));
if (!existsSync(compiled)) {
  process.stderr.write('smartops-gateway: dist/ is missing; run `npm run build` first (npm ci does it for you).\n');
  process.exit(2);
}

// V8 lets the old generation grow to up to 4x the live set before the next full GC: at 1,000
// machines ~60 MB live became ~230 MB of heap and a ~400 MB RSS peak. A fixed 30 % growth keeps the
// heap near 1.3x live (RSS peak ~240 MB) for more, short mark-compacts: 2-4 % of the main
// thread (bench/README "Memory"). V8 reads the flag at every full GC, so setting it here, before the
// gateway loads, takes effect; NODE_OPTIONS does not accept it. A --heap-growing-percent given to
// node on the command line wins.
const HEAP_GROWING_PERCENT = 30;
if (!process.execArgv.some((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a))) {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

await import(compiled);
