import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConditionEvent } from '../../gateway/src/contract/detection.js';
import { alertsConfigSchema, type AlertsConfigInput } from '../../gateway/src/alerts/config.js';
import { createAlerts, type AlertEngine, type AlertsDeps } from '../../gateway/src/alerts/index.js';

export interface Harness {
  engine: AlertEngine;
  dataDir: string;
  registry: Registry;
  clock: { t: number };
  mqtt: Array<{ topic: string; payload: string }>;
  influx: string[];
  /** Close the engine (keeps the data dir). */
  close(): Promise<void>;
  /** Close and open a new engine on the same data dir (a gateway restart). */
  restart(cfg?: AlertsConfigInput, extra?: Partial<AlertsDeps>): Promise<Harness>;
  cleanup(): Promise<void>;
}

export const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);

export async function startAlerts(
  cfg: AlertsConfigInput = {},
  extra: Partial<AlertsDeps> & { dataDir?: string; clockStart?: number } = {},
): Promise<Harness> {
  const dataDir = extra.dataDir ?? mkdtempSync(join(tmpdir(), 'smartops-alerts-'));
  const clock = { t: extra.clockStart ?? T0 };
  const registry = new Registry();
  const mqtt: Harness['mqtt'] = [];
  const influx: string[] = [];
  const engine = await createAlerts(alertsConfigSchema.parse(cfg), {
    dataDir,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    registry,
    publishMqtt: async (topic, payload) => {
      mqtt.push({ topic, payload });
    },
    writeInflux: (lines) => {
      influx.push(...lines);
    },
    kindOf: () => undefined,
    now: () => clock.t,
    ...extra,
  });
  const h: Harness = {
    engine,
    dataDir,
    registry,
    clock,
    mqtt,
    influx,
    close: () => engine.close(),
    async restart(c = cfg, e = {}) {
      await engine.close();
      return startAlerts(c, { ...extra, ...e, dataDir, clockStart: clock.t });
    },
    async cleanup() {
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

export function cond(over: Partial<ConditionEvent> = {}): ConditionEvent {
  return {
    machine: 'm1',
    kind: 'anomaly',
    active: true,
    eventTs: T0,
    severity: 'warning',
    score: 5,
    threshold: 3,
    contributors: [
      { metric: 'vibration_rms_mm_s', feature: 'std', value: 4.1, baseline: 1, ratio: 4.1, text: 'vibration_rms_mm_s std 4.1x baseline' },
    ],
    message: 'Anomaly score 5 above threshold 3 for 4 of 5 windows',
    ...over,
  };
}

/** Value of one series of a prom-client metric (0 when absent). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`metric ${name} not registered`);
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) {
    if (Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)) sum += v.value;
  }
  return sum;
}
