import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTelemetry, type Reading } from '../../gateway/src/contract/reading.js';
import { createFleet } from '../../simulators/src/index.js';
import { mosquittoNotice, runCli, startMosquitto, subscribe, waitUntil, type Mosquitto } from './helpers.js';

const HAVE = mosquittoNotice();

function readingsOf(messages: { topic: string; payload: string }[]): Reading[] {
  const out: Reading[] = [];
  for (const m of messages) {
    const r = parseTelemetry(m.topic, m.payload, Date.now());
    if (!r.ok) throw new Error(`contract rejected ${m.topic} ${m.payload.slice(0, 200)}: ${r.reason} ${r.detail}`);
    out.push(...r.readings);
  }
  return out;
}

const pad = (n: number): string => String(n).padStart(2, '0');
function localStamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

describe.skipIf(!HAVE)('simulator CLIs against a real mosquitto broker', () => {
  let broker: Mosquitto;
  let dir: string;
  beforeAll(async () => {
    broker = await startMosquitto();
    dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
  });
  afterAll(async () => {
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('simulate publishes contract-valid readings identical to the library, writes labels', async () => {
    const sub = await subscribe(broker.url, 'machines/+/telemetry');
    const start = Math.floor((Date.now() - 3600_000) / 1000) * 1000;
    const labels = join(dir, 'out', 'labels.jsonl');
    const res = await runCli('simulate', [
      '--broker', broker.url, '--machines', '4', '--rate', '1', '--speed', 'max', '--seed', '5',
      '--start', String(start), '--duration', '2m', '--utc-offset', '0', '--qos', '1',
      '--fault', 'cnc-01:bearing-wear@30s+1m', '--labels', labels, '--client-id', 'sim-e2e-1',
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/sent 480 readings/);
    await waitUntil(() => sub.messages.length >= 480, 10_000, '480 messages');
    await sub.stop();
    const got = readingsOf(sub.messages);
    expect(got).toHaveLength(480);
    const twin = createFleet({ machines: 4, seed: 5, startTs: start, utcOffsetMinutes: 0, faults: [{ machine: 'cnc-01', fault: 'bearing-wear', onsetMs: 30_000, durationMs: 60_000 }] });
    const failureTs = twin.labels[0]?.failureTs;
    const expected = [...twin.readings({ untilTs: start + 120_000 })];
    const key = (r: { machine: string; ts: number }): string => `${r.machine}@${r.ts}`;
    const byKey = new Map(got.map((r) => [key(r), r.metrics]));
    for (const e of expected) expect(byKey.get(key(e)), key(e)).toEqual(e.metrics);
    const label = JSON.parse(readFileSync(labels, 'utf8').trim()) as Record<string, unknown>;
    // The failure is where cnc-01 has run 1 min since onset (its shift decides when: operating clock).
    expect(label).toMatchObject({ machine: 'cnc-01', kind: 'cnc', fault: 'bearing-wear', onsetTs: start + 30_000, failureTs, clock: 'operating', courseMs: 60_000 });
  });

  it('simulate --batch sends {"readings": [...]} batches of N', async () => {
    const sub = await subscribe(broker.url, 'machines/+/telemetry');
    const res = await runCli('simulate', [
      '--broker', broker.url, '--machines', '2', '--speed', 'max', '--duration', '100s', '--batch', '10', '--qos', '0', '--no-progress',
    ]);
    expect(res.code, res.stderr).toBe(0);
    await waitUntil(() => sub.messages.length >= 20, 10_000, '20 batch messages');
    await sub.stop();
    expect(sub.messages).toHaveLength(20);
    for (const m of sub.messages) expect((JSON.parse(m.payload) as { readings: unknown[] }).readings).toHaveLength(10);
    expect(readingsOf(sub.messages)).toHaveLength(200);
  });

  it('simulate rejects a bad fault spec with a stable code', async () => {
    const res = await runCli('simulate', ['--broker', broker.url, '--fault', 'cnc-01:melting@1h']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/error \[SIM_UNKNOWN_FAULT\].*melting/);
  });

  it('replay publishes a ;-separated CSV with YYYY-MM-DD HH:mm:ss (local) stamps, counting bad rows', async () => {
    const base = Math.floor((Date.now() - 600_000) / 1000) * 1000;
    const rows = ['datetime;Accelerometer1RMS;Volume Flow RateRMS;Temperature (°C);anomaly'];
    const expected: { ts: number; metrics: Record<string, number> }[] = [];
    for (let i = 0; i < 20; i++) {
      const ts = base + i * 1000;
      const a = 0.2 + i / 1000;
      rows.push(`${localStamp(ts)};${String(a).replace('.', ',')};${32 + i};${(70.5 + i / 10).toFixed(1).replace('.', ',')};0`);
      expected.push({ ts, metrics: { Accelerometer1RMS: a, Volume_Flow_RateRMS: 32 + i, Temperature_C: Number((70.5 + i / 10).toFixed(1)) } });
    }
    rows.splice(5, 0, 'not a time;1;2;3;0'); // unparsable timestamp
    rows.splice(9, 0, `${localStamp(base)};1;2`); // too few fields
    const file = join(dir, 'recorded.csv');
    writeFileSync(file, rows.join('\n') + '\n');
    const sub = await subscribe(broker.url, 'machines/pump-07/telemetry');
    const res = await runCli('replay', ['--file', file, '--machine', 'pump-07', '--broker', broker.url, '--speed', '1000', '--exclude', 'anomaly']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('"Volume Flow RateRMS" -> Volume_Flow_RateRMS');
    expect(res.stderr).toContain('"Temperature (°C)" -> Temperature_C');
    expect(res.stderr).toMatch(/rows skipped 2 \(column_count 1, bad_timestamp 1\)/);
    await waitUntil(() => sub.messages.length >= 20, 10_000, '20 replayed readings');
    await sub.stop();
    const got = readingsOf(sub.messages).map((r) => ({ ts: r.ts, metrics: r.metrics }));
    expect(got).toEqual(expected);
  });

  it('replay --as-fast-as-acked back-fills at QoS 1 in batches', async () => {
    const base = Math.floor((Date.now() - 3600_000) / 1000);
    const lines = ['ts,temp_c,label'];
    for (let i = 0; i < 500; i++) lines.push(`${base + i},${20 + (i % 7)},normal`);
    const file = join(dir, 'epoch.csv');
    writeFileSync(file, lines.join('\n') + '\n');
    const sub = await subscribe(broker.url, 'machines/oven-1/telemetry');
    const res = await runCli('replay', ['--file', file, '--machine', 'oven-1', '--broker', broker.url, '--as-fast-as-acked', '--batch', '50']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('"label" skipped (not numeric)');
    await waitUntil(() => sub.messages.length >= 10, 10_000, '10 batches');
    await sub.stop();
    const got = readingsOf(sub.messages);
    expect(got).toHaveLength(500);
    expect(got[0]).toMatchObject({ ts: base * 1000, metrics: { temp_c: 20 } });
    expect(got[499]?.ts).toBe((base + 499) * 1000);
  });

  it('simulate survives a broker restart: reconnects with back-off and carries on without gaps', async () => {
    const port = broker.port;
    const sub1 = await subscribe(broker.url);
    const run = runCli('simulate', ['--broker', broker.url, '--machines', '1', '--speed', '20', '--duration', '4m', '--qos', '1', '--mix', 'pump:1']);
    await waitUntil(() => sub1.messages.length >= 20, 15_000, 'first readings');
    await sub1.stop();
    await broker.stop();
    await new Promise((r) => setTimeout(r, 1500));
    broker = await startMosquitto(port);
    const sub2 = await subscribe(broker.url);
    const res = await run;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/connection lost, reconnecting/);
    expect(res.stderr).toMatch(/sent 240 readings/);
    await sub2.stop();
    // the second subscriber sees the rest, up to the last simulated second
    const got = readingsOf(sub2.messages);
    expect(got.length).toBeGreaterThan(0);
    const ts = [...new Set(got.map((r) => r.ts))].sort((a, b) => a - b);
    expect((ts.at(-1) as number) - (ts[0] as number)).toBeGreaterThan(60_000);
    // contiguous: generation paused while disconnected, so no simulated second is missing
    expect(ts.length).toBe(((ts.at(-1) as number) - (ts[0] as number)) / 1000 + 1);
  });
});
