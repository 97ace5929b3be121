/**
 * End to end: simulator CLI -> the gateway's embedded MQTT broker -> embedded store -> HTTP API.
 * Uses the real in-process gateway (test/helpers/gateway.ts) and the CLIs as child processes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet } from '../../simulators/src/index.js';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { runCli } from './helpers.js';

interface ReadingsBody {
  machine: string;
  readings: { ts: number; metrics: Record<string, number> }[];
}

describe('simulator -> gateway -> stored readings', () => {
  let gw: TestGateway;
  let dir: string;
  beforeAll(async () => {
    gw = await startTestGateway();
    dir = mkdtempSync(join(tmpdir(), 'sim-gw-'));
  });
  afterAll(async () => {
    await gw?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const stored = async (machine: string, limit: number): Promise<ReadingsBody['readings']> => {
    const { status, body } = await getJson<ReadingsBody>(`${gw.httpUrl}/api/v1/machines/${machine}/readings?limit=${limit}&order=asc`);
    expect(status).toBe(200);
    return body.readings;
  };

  it('stores every simulated reading of a few machines, exactly as generated', async () => {
    const start = Math.floor((Date.now() - 2 * 3600_000) / 1000) * 1000;
    const res = await runCli('simulate', [
      '--broker', gw.mqttUrl, '--machines', '3', '--mix', 'cnc:1,compressor:1,pump:1', '--speed', 'max',
      '--start', String(start), '--duration', '3m', '--seed', '17', '--utc-offset', '0', '--batch', '20', '--no-progress',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const expected = [...createFleet({ machines: 3, mix: { cnc: 1, compressor: 1, pump: 1 }, seed: 17, startTs: start, utcOffsetMinutes: 0 }).readings({ untilTs: start + 180_000 })];
    for (const machine of ['cnc-01', 'compressor-01', 'pump-01']) {
      const rows = await waitFor(async () => {
        const r = await stored(machine, 1000);
        return r.length >= 180 ? r : undefined;
      }, 15_000, `180 stored readings of ${machine}`);
      expect(rows).toHaveLength(180);
      const want = expected.filter((e) => e.machine === machine).map((e) => ({ ts: e.ts, metrics: e.metrics }));
      expect(rows.map((r) => ({ ts: r.ts, metrics: r.metrics }))).toEqual(want);
    }
  });

  it('stores a replayed ;-separated CSV with the file\'s timestamps', async () => {
    const base = Math.floor((Date.now() - 900_000) / 1000) * 1000;
    const lines = ['time;Flow (l/min);Pressure bar;label'];
    for (let i = 0; i < 30; i++) lines.push(`${new Date(base + i * 2000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '')};${(100 + i / 2).toFixed(1).replace('.', ',')};${3 + i / 100};x`);
    const file = join(dir, 'r.csv');
    writeFileSync(file, lines.join('\n') + '\n');
    const res = await runCli('replay', ['--file', file, '--machine', 'pump-07', '--broker', gw.mqttUrl, '--tz', 'utc', '--as-fast-as-acked', '--no-progress']);
    expect(res.code, res.stderr).toBe(0);
    const rows = await waitFor(async () => {
      const r = await stored('pump-07', 100);
      return r.length >= 30 ? r : undefined;
    }, 15_000, '30 replayed readings');
    expect(rows[0]).toEqual(expect.objectContaining({ ts: base, metrics: { Flow_l_min: 100, Pressure_bar: 3 } }));
    expect(rows[29]?.ts).toBe(base + 58_000);
  });
});
