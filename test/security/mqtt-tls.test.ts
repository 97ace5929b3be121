/**
 * MQTT over TLS with a throwaway CA, server and client certificates made by the `openssl` CLI
 * (node:crypto cannot issue X.509 certificates). Skipped with a loud notice when openssl is
 * missing; under CI=true that is a failure.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../gateway/src/auth/passwords.js';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { sample, scrape } from './helpers.js';

const hasOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;
if (!hasOpenssl) {
  process.stderr.write(`\n*** openssl not found: MQTT TLS tests are ${process.env.CI ? 'FAILING (CI=true)' : 'SKIPPED'}. Install it with: sudo apt-get install openssl ***\n`);
}
const describeWithOpenssl = hasOpenssl || process.env.CI ? describe : describe.skip;

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a rogue CA's client certificate. */
function makePki(dir: string): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'rogue-ca']) openssl(dir, ['req', '-x509', ...key, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=smartops test ${ca}`]);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const issue = (name: string, cn: string, ca: string, ext: string): void => {
    openssl(dir, ['req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext]);
  };
  issue('server', 'localhost', 'ca', 'server.ext');
  issue('client', 'press-01', 'ca', 'client.ext');
  issue('rogue-client', 'press-01', 'rogue-ca', 'client.ext');
}

describeWithOpenssl('MQTT over TLS', () => {
  let dir: string;
  let gw: TestGateway;
  let mtls: TestGateway;
  const file = (n: string): string => join(dir, n);
  const read = (n: string): Buffer => readFileSync(file(n));

  beforeAll(async () => {
    if (!hasOpenssl) throw new Error('openssl is required in CI: apt-get install -y openssl');
    dir = mkdtempSync(join(tmpdir(), 'smartops-tls-'));
    makePki(dir);
    const users = [{ username: 'press-01', passwordHash: await hashPassword('press-01-password') }];
    const tls = { enabled: true, host: '127.0.0.1', port: 0, certFile: file('server.crt'), keyFile: file('server.key') };
    [gw, mtls] = await Promise.all([
      startTestGateway({ mqtt: { allowAnonymous: false, users, tls } }),
      startTestGateway({ mqtt: { allowAnonymous: false, users, tls: { ...tls, caFile: file('ca.crt'), requireClientCert: true } } }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([gw?.stop(), mtls?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tlsUrl = (g: TestGateway): string => `mqtts://127.0.0.1:${g.gateway.tlsPort}`;
  /** 'connected', or why not. (With TLS 1.3 the server refuses a client certificate after the
   * client's handshake is done, so a refusal may show only as the connection closing.) */
  function outcome(url: string, opts: mqtt.IClientOptions): Promise<'connected' | string> {
    return new Promise((resolve) => {
      const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
      const done = (r: string): void => {
        c.end(true);
        resolve(r);
      };
      c.once('connect', () => done('connected'));
      c.once('error', (e) => done(e.message));
      c.once('close', () => done('closed'));
    });
  }

  it('a device that trusts the CA connects with its password and its readings are stored', async () => {
    const c = await mqtt.connectAsync(tlsUrl(gw), { ca: read('ca.crt'), username: 'press-01', password: 'press-01-password', reconnectPeriod: 0 });
    await c.publishAsync('machines/press-01/telemetry', JSON.stringify({ metrics: { temp_c: 40 } }), { qos: 1 });
    await c.endAsync();
    await waitFor(async () => (await getJson<{ readings: unknown[] }>(`${gw.httpUrl}/api/v1/machines/press-01/readings`)).body.readings.length === 1);
  });

  it('TLS does not replace the password: a wrong password is still refused', async () => {
    expect(await outcome(tlsUrl(gw), { ca: read('ca.crt'), username: 'press-01', password: 'wrong' })).toMatch(/Bad username or password/i);
  });

  it('a client that does not trust the server certificate refuses to talk to it', async () => {
    expect(await outcome(tlsUrl(gw), { username: 'press-01', password: 'press-01-password' })).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });

  it('plain MQTT on the TLS port fails the handshake and is counted', async () => {
    const before = await scrape(gw.httpUrl);
    const s = tcpConnect({ host: '127.0.0.1', port: gw.gateway.tlsPort as number });
    s.on('error', () => undefined);
    s.on('connect', () => s.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00])));
    await new Promise<void>((r) => s.once('close', () => r()));
    const after = await waitFor(async () => {
      const x = await scrape(gw.httpUrl);
      return sample(x, 'smartops_mqtt_auth_failures_total', { reason: 'tls_handshake' }) > sample(before, 'smartops_mqtt_auth_failures_total', { reason: 'tls_handshake' }) ? x : undefined;
    });
    expect(after).toBeDefined();
  });

  it('with requireClientCert: no certificate or a rogue CA’s certificate is refused and counted; the CA’s client certificate plus password connects', async () => {
    const before = await scrape(mtls.httpUrl);
    const base = { ca: read('ca.crt'), username: 'press-01', password: 'press-01-password' };
    expect(await outcome(tlsUrl(mtls), base)).not.toBe('connected');
    expect(await outcome(tlsUrl(mtls), { ...base, cert: read('rogue-client.crt'), key: read('rogue-client.key') })).not.toBe('connected');
    expect(await outcome(tlsUrl(mtls), { ...base, cert: read('client.crt'), key: read('client.key') })).toBe('connected');
    expect(await outcome(tlsUrl(mtls), { ...base, password: 'wrong', cert: read('client.crt'), key: read('client.key') })).toMatch(/Bad username or password/i);
    const after = await waitFor(async () => {
      const x = await scrape(mtls.httpUrl);
      return sample(x, 'smartops_mqtt_auth_failures_total', { reason: 'tls_handshake' }) - sample(before, 'smartops_mqtt_auth_failures_total', { reason: 'tls_handshake' }) >= 2 ? x : undefined;
    });
    expect(sample(after, 'smartops_mqtt_auth_failures_total', { reason: 'bad_credentials' })).toBe(1);
  });

  it('refuses to start with TLS enabled but no certificate, or client certificates without a CA', async () => {
    await expect(startTestGateway({ mqtt: { tls: { enabled: true, host: '127.0.0.1', port: 0 } } })).rejects.toThrow(/certFile and mqtt.tls.keyFile/);
    await expect(
      startTestGateway({ mqtt: { tls: { enabled: true, host: '127.0.0.1', port: 0, certFile: file('server.crt'), keyFile: file('server.key'), requireClientCert: true } } }),
    ).rejects.toThrow(/needs mqtt.tls.caFile/);
  });
});
