/** The command line as a user runs it: a real child process. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { verifyPassword } from '../../gateway/src/auth/passwords.js';
import { freePort } from '../helpers/ports.js';
import { getJson, waitFor } from '../helpers/gateway.js';

const root = new URL('../..', import.meta.url).pathname;
const cliArgs = ['--import', 'tsx', join(root, 'gateway/src/cli.ts')];
const env: NodeJS.ProcessEnv = { ...process.env, CI: "", SMARTOPS_LOG_LEVEL: "warn" };
for (const k of Object.keys(env)) if (k.startsWith('SMARTOPS_') && k !== 'SMARTOPS_LOG_LEVEL') delete env[k];

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...cliArgs, ...args], { cwd: root, env, encoding: 'utf8', input, timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('smartops-gateway CLI', () => {
  it('--help lists the options', () => {
    const r = cli(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--config <file>');
    expect(r.stdout).toContain('--influx-url <url>');
    expect(r.stdout).toContain('--print-config');
  });

  it('--print-config shows the merged config with secrets redacted', () => {
    const r = spawnSync(process.execPath, [...cliArgs, '--print-config', '--mqtt-port', '1999', '--set', 'http.port=9999'], {
      cwd: root,
      env: { ...env, SMARTOPS_INFLUX_TOKEN: 'super-secret', SMARTOPS_INFLUX_URL: 'http://127.0.0.1:8086' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const cfg = parseYaml(r.stdout) as { mqtt: { port: number }; http: { port: number }; influx: { token: string; url: string } };
    expect(cfg.mqtt.port).toBe(1999);
    expect(cfg.http.port).toBe(9999);
    expect(cfg.influx.token).toBe('<redacted>');
    expect(r.stdout).not.toContain('super-secret');
  });

  it('exits 2 with the key path on a bad config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartops-cli-'));
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, 'mqtt:\n  port: 99999\n  colour: blue\n');
    const r = cli(['--config', f]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('SMARTOPS_CONFIG_INVALID');
    expect(r.stderr).toContain('mqtt.port');
    expect(r.stderr).toContain('"mqtt.colour"');
  });

  it('a bad value of a typed flag exits 2 naming the flag and its key path', () => {
    const cases: Array<[string[], string]> = [
      [['--mqtt-port', 'abc'], '[SMARTOPS_CONFIG_FLAG] --mqtt-port (mqtt.port): expected an integer, got "abc"'],
      [['--http-port', '80.5'], '[SMARTOPS_CONFIG_FLAG] --http-port (http.port): expected an integer, got "80.5"'],
      [['--sink', 'mongo'], '[SMARTOPS_CONFIG_FLAG] --sink (sink.type): expected one of auto, embedded, influxdb-v1, influxdb-v2, got "mongo"'],
      [['--log-level', 'loud'], '[SMARTOPS_CONFIG_FLAG] --log-level (log.level): expected one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
    ];
    for (const [args, message] of cases) {
      const r = cli([...args, '--print-config']);
      expect({ args, status: r.status, stderr: r.stderr.trim() }).toEqual({ args, status: 2, stderr: `smartops-gateway: ${message}` });
    }
  });

  it('user add writes a scrypt hash that verifies; token add prints a hashed config entry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartops-cli-'));
    const f = join(dir, 'users.yaml');
    const r = cli(['user', 'add', 'press-01', '--users-file', f, '--password-stdin'], 'correct horse battery\n');
    expect(r.status).toBe(0);
    const doc = parseYaml(readFileSync(f, 'utf8')) as { users: { username: string; passwordHash: string }[] };
    expect(doc.users[0]?.username).toBe('press-01');
    expect(await verifyPassword('correct horse battery', doc.users[0]?.passwordHash ?? '')).toBe(true);
    expect(await verifyPassword('wrong', doc.users[0]?.passwordHash ?? '')).toBe(false);
    const t = cli(['token', 'add', 'grafana', '--scopes', 'read']);
    expect(t.status).toBe(0);
    expect(t.stdout).toMatch(/tokenHash: sha256:[0-9a-f]{64}/);
    expect(cli(['token', 'add', 'x', '--scopes', 'root']).status).toBe(2);
  });

  it('starts, serves HTTP, and stops gracefully on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartops-cli-'));
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, [...cliArgs, '--data-dir', dir, '--mqtt-host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--http-host', '127.0.0.1', '--http-port', String(httpPort), '--allow-anonymous'], { cwd: root, env, stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(async () => (await getJson<{ status: string }>(`http://127.0.0.1:${httpPort}/health`)).body.status === 'ok', 60000, `gateway up (${out})`);
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
  });
});
