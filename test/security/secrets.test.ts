/**
 * Secrets never leave the process: the gateway as a user runs it (a real child process, logging
 * at trace level) is driven through successful and failed MQTT logins and HTTP requests, and its
 * whole log output must not contain a password, a token, or their hashes. --print-config redacts
 * them too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { hashPassword, hashToken } from '../../gateway/src/auth/passwords.js';
import { waitFor } from '../helpers/gateway.js';

const root = new URL('../..', import.meta.url).pathname;
const cli = ['--import', 'tsx', join(root, 'gateway/src/cli.ts')];
const env = { ...process.env };
for (const k of Object.keys(env)) if (k.startsWith('SMARTOPS_')) delete env[k];

const SECRETS = {
  devicePassword: 'press-01-secret-password',
  fileUserPassword: 'line-2-secret-password',
  wrongPassword: 'guessed-secret-password',
  readToken: 'read-token-SECRET-0123456789',
  wrongToken: 'wrong-token-SECRET-0123456789',
  influxPassword: 'influx-SECRET-password',
  influxToken: 'influx-SECRET-token',
};

describe('secrets stay secret', () => {
  let dir: string;
  let configFile: string;
  let hashes: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'smartops-secrets-'));
    const deviceHash = await hashPassword(SECRETS.devicePassword);
    const fileHash = await hashPassword(SECRETS.fileUserPassword);
    const usersFile = join(dir, 'users.yaml');
    writeFileSync(usersFile, toYaml({ users: [{ username: 'line-2-plc', passwordHash: fileHash, machines: ['press-02'] }] }), { mode: 0o600 });
    hashes = [deviceHash, fileHash, hashToken(SECRETS.readToken)];
    configFile = join(dir, 'smartops.yaml');
    writeFileSync(
      configFile,
      toYaml({
        dataDir: join(dir, 'data'),
        log: { level: 'trace' },
        mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: false, usersFile, users: [{ username: 'press-01', passwordHash: deviceHash }] },
        http: { host: '127.0.0.1', port: 0, auth: 'token', tokens: [{ name: 'grafana', tokenHash: hashToken(SECRETS.readToken), scopes: ['read'] }] },
        // Not used by the embedded sink, but present in the config: must not leak either.
        sink: { type: 'embedded' },
        influx: { url: 'http://127.0.0.1:9', username: 'gw', password: SECRETS.influxPassword, token: SECRETS.influxToken },
      }),
    );
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function assertNoSecret(text: string): void {
    for (const [name, secret] of Object.entries(SECRETS)) expect(text.includes(secret), `${name} leaked`).toBe(false);
    for (const h of hashes) expect(text.includes(h), 'a hash leaked').toBe(false);
    // Nor a fragment of one (a hash printed in part still helps an offline guesser).
    for (const h of hashes) expect(text.includes(h.slice(-20)), 'part of a hash leaked').toBe(false);
  }

  it('--print-config redacts passwords, tokens and their hashes', () => {
    const r = spawnSync(process.execPath, [...cli, '--config', configFile, '--print-config'], { cwd: root, env, encoding: 'utf8', timeout: 60000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('<redacted>');
    expect(r.stdout).toContain('grafana');
    assertNoSecret(r.stdout + r.stderr);
  });

  it('the log of a running gateway (trace level) holds no secret after good and bad logins', async () => {
    const child = spawn(process.execPath, [...cli, '--config', configFile], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const started = await waitFor(() => /"msg":"smartops-gateway started"/.test(out) && out, 60000, `gateway start (${out.slice(-2000)})`);
      const line = started.split('\n').find((l) => l.includes('smartops-gateway started')) as string;
      const info = JSON.parse(line) as { mqtt: string; http: string };
      const mqttUrl = `mqtt://${info.mqtt}`;
      const httpUrl = `http://${info.http}`;

      const good = await mqtt.connectAsync(mqttUrl, { username: 'press-01', password: SECRETS.devicePassword, reconnectPeriod: 0 });
      await good.publishAsync('machines/press-01/telemetry', JSON.stringify({ metrics: { a: 1 } }), { qos: 1 });
      await good.endAsync();
      const plc = await mqtt.connectAsync(mqttUrl, { username: 'line-2-plc', password: SECRETS.fileUserPassword, reconnectPeriod: 0 });
      await plc.endAsync();
      for (const [u, p] of [
        ['press-01', SECRETS.wrongPassword],
        ['nobody', SECRETS.wrongPassword],
        ['press-01', SECRETS.fileUserPassword],
      ]) {
        await expect(mqtt.connectAsync(mqttUrl, { username: u, password: p, reconnectPeriod: 0 })).rejects.toThrow();
      }
      expect((await fetch(`${httpUrl}/api/v1/machines`, { headers: { authorization: `Bearer ${SECRETS.readToken}` } })).status).toBe(200);
      expect((await fetch(`${httpUrl}/api/v1/machines`, { headers: { authorization: `Bearer ${SECRETS.wrongToken}` } })).status).toBe(401);
      expect((await fetch(`${httpUrl}/api/v1/machines?token=${SECRETS.wrongToken}`)).status).toBe(401);
      // A request that fails inside the server (bad JSON body) is logged with its request data.
      await fetch(`${httpUrl}/api/v1/alerts/x/ack`, { method: 'POST', headers: { authorization: `Bearer ${SECRETS.readToken}`, 'content-type': 'application/json' }, body: '{' });
      await waitFor(() => /mqtt connection refused/.test(out), 10000, 'refusal logged');
    } finally {
      child.kill('SIGTERM');
      await new Promise<void>((r) => child.once('exit', () => r()));
    }
    // The log did record the events (so the check below is not vacuous)...
    expect(out).toMatch(/mqtt client connected/);
    expect(out).toMatch(/mqtt connection refused/);
    expect(out).toMatch(/"username":"press-01"/);
    // ...and no secret.
    assertNoSecret(out);
  });
});
