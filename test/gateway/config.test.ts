import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv, loadConfig, redactConfig, resolveSinkType, envNameFor } from '../../gateway/src/config/load.js';
import { renderConfigReference, spliceConfigReference } from '../../gateway/src/config/docs.js';
import { GatewayError } from '../../gateway/src/errors.js';

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'smartops-cfg-'));
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

function errorOf(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (e) {
    return e as GatewayError;
  }
  throw new Error('expected an error');
}

describe('config', () => {
  it('has sane defaults with no source at all', () => {
    const c = loadConfig({});
    expect(c.mqtt.host).toBe('0.0.0.0');
    expect(c.mqtt.port).toBe(1883);
    expect(c.mqtt.allowAnonymous).toBe(false);
    expect(c.http.port).toBe(8080);
    expect(c.store.retentionDays).toBe(7);
    expect(resolveSinkType(c)).toBe('embedded');
  });

  it('applies defaults < file < env < flags < --set', () => {
    const file = tmpFile('c.yaml', 'mqtt:\n  port: 1000\nhttp:\n  port: 2000\ningest:\n  rejectsKept: 5\nlog:\n  level: warn\n');
    const env = { SMARTOPS_HTTP_PORT: '3000', SMARTOPS_INGEST_REJECTS_KEPT: '6', PATH: '/bin' };
    const c1 = loadConfig({ file, env: {} });
    expect([c1.mqtt.port, c1.http.port, c1.ingest.rejectsKept, c1.log.level]).toEqual([1000, 2000, 5, 'warn']);
    const c2 = loadConfig({ file, env });
    expect([c2.mqtt.port, c2.http.port, c2.ingest.rejectsKept]).toEqual([1000, 3000, 6]);
    const c3 = loadConfig({ file, env, flags: { ingest: { rejectsKept: 7 } } });
    expect([c3.mqtt.port, c3.http.port, c3.ingest.rejectsKept]).toEqual([1000, 3000, 7]);
    const c4 = loadConfig({ file, env, flags: { ingest: { rejectsKept: 7 } }, sets: ['ingest.rejectsKept=8', 'outbox.fsync=os'] });
    expect(c4.ingest.rejectsKept).toBe(8);
    expect(c4.outbox.fsync).toBe('os');
    // Defaults survive for keys no source sets.
    expect(c4.mqtt.host).toBe('0.0.0.0');
  });

  it('reads JSON files and SMARTOPS_CONFIG', () => {
    const file = tmpFile('c.json', JSON.stringify({ influx: { url: 'http://127.0.0.1:8086' } }));
    const c = loadConfig({ env: { SMARTOPS_CONFIG: file } });
    expect(resolveSinkType(c)).toBe('influxdb-v1');
  });

  it('names the key path of an unknown key', () => {
    const e = errorOf(() => loadConfig({ flags: { mqtt: { prot: 1883 } } }));
    expect(e.code).toBe('SMARTOPS_CONFIG_INVALID');
    expect(e.message).toContain('"mqtt.prot"');
  });

  it('names the key path and expectation of a bad value', () => {
    const file = tmpFile('bad.yaml', 'http:\n  port: "eighty"\nmachines:\n  "bad id!": {}\n');
    const e = errorOf(() => loadConfig({ file }));
    expect(e.message).toMatch(/http\.port: .*expected number/);
    expect(e.message).toContain('machines');
    const e2 = errorOf(() => loadConfig({ flags: { mqtt: { port: 70000 } } }));
    expect(e2.message).toMatch(/mqtt\.port: .*65535/);
  });

  it('rejects a bad environment value and an unknown SMARTOPS_ variable by name', () => {
    const e = errorOf(() => loadConfig({ env: { SMARTOPS_MQTT_PORT: 'abc' } }));
    expect(e.code).toBe('SMARTOPS_CONFIG_ENV');
    expect(e.message).toContain('SMARTOPS_MQTT_PORT');
    const e2 = errorOf(() => loadConfig({ env: { SMARTOPS_MQTT_PROT: '1' } }));
    expect(e2.message).toContain('SMARTOPS_MQTT_PROT');
    const e3 = errorOf(() => loadConfig({ sets: ['nope.key=1'] }));
    expect(e3.code).toBe('SMARTOPS_CONFIG_FLAG');
    expect(e3.message).toContain('nope.key');
  });

  it('parses booleans, arrays and maps from the environment', () => {
    const raw = configFromEnv({
      SMARTOPS_MQTT_ALLOW_ANONYMOUS: 'true',
      SMARTOPS_HTTP_CORS_ORIGINS: '["http://a"]',
      SMARTOPS_MACHINES: '{"cnc-01":{"site":"a b","kind":"cnc"}}',
    });
    expect(raw).toEqual({ mqtt: { allowAnonymous: true }, http: { corsOrigins: ['http://a'] }, machines: { 'cnc-01': { site: 'a b', kind: 'cnc' } } });
    expect(envNameFor(['mqtt', 'ws', 'enabled'])).toBe('SMARTOPS_MQTT_WS_ENABLED');
  });

  it('fails on a missing or malformed file with the file name', () => {
    expect(errorOf(() => loadConfig({ file: '/nonexistent/x.yaml' })).message).toContain('/nonexistent/x.yaml');
    const f = tmpFile('broken.yaml', 'mqtt: [1, 2\n');
    expect(errorOf(() => loadConfig({ file: f })).code).toBe('SMARTOPS_CONFIG_FILE');
  });

  it('redacts secrets', () => {
    const c = loadConfig({ env: { SMARTOPS_INFLUX_TOKEN: 'tok-secret', SMARTOPS_INFLUX_PASSWORD: 'pw-secret' } });
    const text = JSON.stringify(redactConfig(c));
    expect(text).not.toContain('tok-secret');
    expect(text).not.toContain('pw-secret');
    expect(text).toContain('<redacted>');
  });

  it('README configuration reference is generated from the schema and up to date (npm run docs:config)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(spliceConfigReference(readme)).toBe(readme);
    const ref = renderConfigReference();
    expect(ref).toContain('`SMARTOPS_MQTT_PORT`');
    expect(ref).toContain('`outbox.fsync`');
  });
});

describe('sink selection', () => {
  it('names the missing InfluxDB settings', async () => {
    const { createSink } = await import('../../gateway/src/sinks/index.js');
    const dir = mkdtempSync(join(tmpdir(), 'smartops-sink-'));
    const v2 = loadConfig({ flags: { sink: { type: 'influxdb-v2' }, influx: { url: 'http://127.0.0.1:1', org: 'o' } } });
    const e = errorOf(() => createSink(v2, dir, () => undefined));
    expect(e.code).toBe('SMARTOPS_CONFIG_INVALID');
    expect(e.message).toContain('influx.bucket, influx.token');
    const v1 = loadConfig({ flags: { sink: { type: 'influxdb-v1' } } });
    expect(errorOf(() => createSink(v1, dir, () => undefined)).message).toContain('influx.url');
    const auto = loadConfig({ flags: { influx: { url: 'http://127.0.0.1:1', org: 'o', bucket: 'b', token: 't' } } });
    expect(createSink(auto, dir, () => undefined).sink.name).toBe('influxdb-v2');
  });
});
