/**
 * Where the InfluxDB data behind the dashboard query test comes from. One function per source,
 * switched in `DATA_SOURCE` below (default: the gateway; DASHBOARDS_DATA_SOURCE=synthetic for the other):
 *
 * - `synthetic`: line protocol in the gateway's schema, written straight to influxd. Fast and
 *   deterministic; checks the queries against the schema as documented.
 * - `gatewayWithSimulators`: the real thing. The gateway (in process, influxdb-v1 sink) is fed by
 *   the simulators over MQTT and writes telemetry, anomaly, alerts and its own health itself.
 */
import mqtt from 'mqtt';
import { telemetryTopic } from '../../gateway/src/contract/reading.js';
import { createFleet } from '../../simulators/src/index.js';
import { startTestGateway, waitFor } from '../helpers/gateway.js';
import type { Influxd } from '../helpers/influxd.js';
import { syntheticData } from './synthetic.js';

export interface FilledInflux {
  /** Which source filled it (printed by the test). */
  source: string;
  db: string;
  /** The dashboard time range the test uses (epoch ms). */
  range: { from: number; to: number };
  /** Grafana's auto interval for that range (panels' min interval still applies on top). */
  interval: string;
  /** Value to pick for single-value variables, e.g. the machine developing a fault. */
  prefer: Record<string, string>;
  /** Stop whatever the source started (gateway, simulators); the influxd is the caller's. */
  cleanup(): Promise<void>;
}

export type DataSource = (influxd: Influxd) => Promise<FilledInflux>;

export const synthetic: DataSource = async (influxd) => {
  const db = 'smartops_synthetic';
  await influxd.createDatabase(db);
  const now = Date.now();
  const data = syntheticData({ now, spanMs: 15 * 60_000 });
  // Chunks keep each request small; influxd 1.x accepts up to 25 MB but the test need not.
  for (let i = 0; i < data.lines.length; i += 5000) await influxd.write(data.lines.slice(i, i + 5000).join('\n'), db);
  return {
    source: 'synthetic line protocol (test/dashboards/synthetic.ts)',
    db,
    range: { from: data.from, to: data.to + 1000 },
    interval: '10s',
    prefer: { machine: data.faultyMachine },
    cleanup: async () => {},
  };
};

/**
 * 6.5 simulated hours of three machines (continuous duty, one reading every 2 s), published as
 * QoS 1 batches as fast as the gateway acknowledges them; cnc-02 develops bearing wear 4.5 h in and
 * fails 2 h later. Detection learns from the first 4 h (shorter baselines miss operating points of
 * this simulator: see test/e2e/anomaly.test.ts), health is written every second, and the gateway
 * keeps running for a few health intervals so rate panels (derivatives of counters) get buckets.
 * The run ends 10 minutes before now (the gateway refuses readings from the future).
 */
export const gatewayWithSimulators: DataSource = async (influxd) => {
  const db = 'smartops_e2e';
  const H = 3_600_000;
  const baselineMs = 4 * H;
  const onsetMs = baselineMs + 30 * 60_000;
  const faultMs = 2 * H;
  const runMs = onsetMs + faultMs;
  const startTs = Math.floor((Date.now() - runMs - 10 * 60_000) / 1000) * 1000;
  const gw = await startTestGateway({
    sink: { type: 'influxdb-v1' },
    influx: { url: influxd.url, database: db },
    health: { intervalMs: 1000 },
    detection: { baseline: { durationMs: baselineMs }, idleCloseMs: 3000 },
  } as Parameters<typeof startTestGateway>[0]);
  const client = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'dashboards-e2e', clean: true, reconnectPeriod: 0 });
  try {
    const fleet = createFleet({
      machines: [
        { id: 'cnc-01', kind: 'cnc', schedule: 'continuous' },
        { id: 'cnc-02', kind: 'cnc', schedule: 'continuous' },
        { id: 'compressor-01', kind: 'compressor', schedule: 'continuous' },
      ],
      seed: 7,
      startTs,
      stepMs: 2000,
      utcOffsetMinutes: 0,
      faults: [{ machine: 'cnc-02', fault: 'bearing-wear', onsetMs, durationMs: faultMs }],
    });
    const failureTs = fleet.labels[0]?.failureTs ?? startTs + runMs;
    // One batch message per machine per 400 readings, QoS 1: PUBACK means stored.
    const pending = new Map<string, { ts: number; metrics: Record<string, number> }[]>();
    const flush = async (machine: string) => {
      const readings = pending.get(machine) ?? [];
      if (readings.length === 0) return;
      pending.set(machine, []);
      await client.publishAsync(telemetryTopic(machine), JSON.stringify({ readings }), { qos: 1 });
    };
    let count = 0;
    for (const r of fleet.readings({ untilTs: failureTs })) {
      const list = pending.get(r.machine) ?? [];
      list.push({ ts: r.ts, metrics: r.metrics });
      pending.set(r.machine, list);
      count++;
      if (list.length >= 400) await flush(r.machine);
    }
    for (const m of pending.keys()) await flush(m);
    // Something for the rejects panel: a payload that is not JSON and one with a bad timestamp.
    await client.publishAsync(telemetryTopic('cnc-01'), 'not json', { qos: 1 });
    await client.publishAsync(telemetryTopic('cnc-01'), JSON.stringify({ ts: 'yesterday', metrics: { x: 1 } }), { qos: 1 });

  const q = async (influxql: string) => (await influxd.query(influxql, db).catch(() => [])).length;
    await waitFor(async () => (await q(`SELECT count(*) FROM "telemetry"`)) > 0, 60_000, 'telemetry in InfluxDB');
    await waitFor(async () => (await q(`SELECT * FROM "alerts" WHERE "machine" = 'cnc-02' LIMIT 1`)) > 0, 120_000, 'an alert for cnc-02');
    const t0 = Date.now();
    await waitFor(
      async () => Date.now() - t0 > 25_000 && (await q(`SELECT * FROM "gateway_rejects" LIMIT 1`)) > 0,
      60_000,
      'health points over 25 s',
    );
    return {
      source: `gateway (influxdb-v1 sink) fed by the simulators: ${count} readings, 3 machines, cnc-02 with bearing wear`,
      db,
      range: { from: startTs, to: Date.now() + 1000 },
      interval: '10s',
      prefer: { machine: 'cnc-02' },
      cleanup: async () => {
        await gw.stop();
      },
    };
  } catch (e) {
    await gw.stop();
    throw e;
  } finally {
    await client.endAsync();
  }
};

/**
 * The source the query test uses. DASHBOARDS_DATA_SOURCE=synthetic|gateway overrides it for a run.
 */
const SOURCES: Record<string, DataSource> = { synthetic, gateway: gatewayWithSimulators };
export const DATA_SOURCE: DataSource = SOURCES[process.env.DASHBOARDS_DATA_SOURCE ?? ''] ?? gatewayWithSimulators;
