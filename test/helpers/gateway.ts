/**
 * An in-process gateway for tests: loopback, free ports, temp data dir, anonymous MQTT, embedded
 * store unless overridden. Logs go nowhere unless SMARTOPS_TEST_LOG=1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { deepMerge, validateConfig, type PlainObject } from '../../gateway/src/config/load.js';
import type { Config, ConfigInput } from '../../gateway/src/config/schema.js';
import { startGateway, type Gateway } from '../../gateway/src/main.js';

export type DeepPartial<T> = T extends (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export interface TestGateway {
  mqttUrl: string;
  httpUrl: string;
  dataDir: string;
  config: Config;
  gateway: Gateway;
  /** Stop the gateway and delete its data dir (unless keepData). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export function testConfig(overrides: DeepPartial<ConfigInput> = {}, dataDir?: string): Config {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'smartops-gw-'));
  const base: PlainObject = {
    dataDir: dir,
    log: { level: process.env.SMARTOPS_TEST_LOG ? 'debug' : 'silent' },
    mqtt: { host: '127.0.0.1', port: 0, allowAnonymous: true },
    http: { host: '127.0.0.1', port: 0 },
    sink: { flushIntervalMs: 50, retryInitialMs: 50, retryMaxMs: 1000 },
  };
  return validateConfig(deepMerge(base, overrides as PlainObject));
}

export async function startTestGateway(overrides: DeepPartial<ConfigInput> = {}, opts: { dataDir?: string } = {}): Promise<TestGateway> {
  const config = testConfig(overrides, opts.dataDir);
  const logger = pino({ level: config.log.level });
  const gateway = await startGateway(config, { logger });
  return {
    mqttUrl: `mqtt://127.0.0.1:${gateway.mqttPort}`,
    httpUrl: `http://127.0.0.1:${gateway.httpPort}`,
    dataDir: config.dataDir,
    config,
    gateway,
    async stop(o = {}) {
      await gateway.stop();
      if (!o.keepData) rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

/** Poll until fn returns a truthy value or the timeout passes. */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 10000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

export async function getJson<T = unknown>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
