// Every shipped launcher must start node with the flags V8 reads only at start-up (gateway/src/launch.ts):
// a launcher that forgets them still runs, just slower under load, so only a check like this notices.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LAUNCH_NODE_FLAGS } from '../../gateway/src/launch.js';

const root = new URL('../../', import.meta.url);
const read = (p: string): string => readFileSync(new URL(p, root), 'utf8');

describe('launchers', () => {
  const launchers: [string, string][] = [
    ['bin/smartops-gateway.js shebang', read('bin/smartops-gateway.js').split('\n')[0] ?? ''],
    ['npm start', (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.start ?? ''],
    ['Dockerfile ENTRYPOINT', read('Dockerfile').split('\n').find((l) => l.startsWith('ENTRYPOINT')) ?? ''],
    ['systemd ExecStart', read('docs/systemd/smartops-gateway.service').split('\n').find((l) => l.startsWith('ExecStart=')) ?? ''],
  ];
  it.each(launchers)('%s passes the launch node flags', (_name, line) => {
    expect(line).not.toBe('');
    for (const flag of LAUNCH_NODE_FLAGS) expect(line).toContain(flag);
  });
});
