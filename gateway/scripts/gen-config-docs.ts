/** Rewrites README.md's configuration reference from the config schema (`npm run docs:config`). */
import { readFileSync, writeFileSync } from 'node:fs';
import { spliceConfigReference } from '../src/config/docs.js';

const path = new URL('../../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = spliceConfigReference(before);
if (after !== before) {
  writeFileSync(path, after);
  process.stdout.write('README.md configuration reference updated\n');
} else process.stdout.write('README.md configuration reference already up to date\n');
