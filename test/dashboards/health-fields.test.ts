/**
 * The dashboard tests run every panel query against synthetic data (synthetic.ts). This checks that
 * data has the shape the gateway really writes: the field keys of each health measurement from
 * healthLines (gateway/src/obs/health.ts) equal those of the synthetic points, so a field added on
 * one side only (and a panel querying it) fails here.
 */
import { expect, it } from 'vitest';
import { healthLines, type HealthSnapshot } from '../../gateway/src/obs/health.js';
import { syntheticData } from './synthetic.js';

/** measurement -> its field keys, from line protocol without escaped spaces in tags (true of both sources). */
function fieldKeys(lines: string[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of lines) {
    const [series, fieldSet] = line.split(' ');
    const measurement = (series as string).split(',')[0] as string;
    const keys = out.get(measurement) ?? new Set<string>();
    for (const f of (fieldSet as string).split(/,(?=[A-Za-z_]+=)/)) keys.add(f.split('=')[0] as string);
    out.set(measurement, keys);
  }
  return out;
}

it('the gateway measurement written by the gateway has exactly the fields the dashboards are tested against', () => {
  const snapshot: HealthSnapshot = {
    host: 'gw-test',
    readingsAccepted: 10,
    readingsRejected: 1,
    readingsDropped: 2,
    readingsOverwritten: 3,
    messagesReceived: 11,
    outboxDepth: 4,
    outboxOldestAgeS: 1.5,
    outboxBytes: 4096,
    writeErrors: 0,
    writeLatencyMs: 12,
    inferenceLatencyMs: 1.2,
    clientsConnected: 3,
    rssBytes: 9e7,
    heapUsedBytes: 3e7,
    cpuSeconds: 1.25,
    openAlerts: 1,
    rejectsByReason: { invalid_json: 1 },
    machines: [],
  };
  const real = fieldKeys(healthLines(snapshot, Date.now()));
  const synthetic = fieldKeys(syntheticData({ now: Date.now(), spanMs: 60_000 }).lines);
  for (const m of ['gateway', 'gateway_rejects']) expect([...(real.get(m) ?? [])].sort(), m).toEqual([...(synthetic.get(m) ?? [])].sort());
  expect(real.get('gateway')).toContain('readings_dropped');
  expect(real.get('gateway')).toContain('readings_overwritten');
});
