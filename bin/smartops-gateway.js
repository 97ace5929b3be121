#!/usr/bin/env -S node --max-semi-space-size=32
// The flag: a larger young generation (gateway/src/launch.ts); V8 reads it only at start-up.
// Runs the compiled gateway (npm ci / npm install build it through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/gateway/src/cli.js', import.meta.url));
if (!existsSync(compiled)) {
  process.stderr.write('smartops-gateway: dist/ is missing; run `npm run build` first (npm ci does it for you).\n');
  process.exit(2);
}

await import(compiled);
