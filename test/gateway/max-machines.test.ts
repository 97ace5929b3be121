/**
 * ingest.maxMachines: readings of a new machine id beyond the limit are rejected (counted, listed,
 * logged) while known machines go on; machines known before a restart count and stay admitted.
 * Real gateway in-process, real mqtt.js client over TCP, embedded store.
 */
import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterEach, expect, it } from 'vitest';
import { getJson, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';

const open: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c().catch(() => undefined);
});

async function publishAll(gw: TestGateway, machines: string[]): Promise<void> {
  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  for (const m of machines) await c.publishAsync(`machines/${m}/telemetry`, JSON.stringify({ metrics: { temp_c: 40 } }), { qos: 1 });
  await c.endAsync();
}

const rejected = async (gw: TestGateway): Promise<number> =>
  Number(/^smartops_messages_rejected_total\{reason="too_many_machines"\} (\S+)$/m.exec(await fetch(`${gw.httpUrl}/metrics`).then((r) => r.text()))?.[1]);

async function machineIds(gw: TestGateway): Promise<string[]> {
  return (await getJson<{ machines: { id: string }[] }>(`${gw.httpUrl}/api/v1/machines`)).body.machines.map((m) => m.id).sort();
}

it('rejects readings of a new machine id beyond ingest.maxMachines, keeps taking the known ones, and remembers them across a restart', async () => {
  const gw = await startTestGateway({ ingest: { maxMachines: 2 } });
  const dataDir = gw.dataDir;
  open.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  await publishAll(gw, ['press-01', 'press-02', 'press-03', 'press-01']);
  await waitFor(async () => (await rejected(gw)) === 1, 5000, 'one too_many_machines reject');
  expect(await machineIds(gw)).toEqual(['press-01', 'press-02']);
  const rejects = await getJson<{ rejects: { reason: string; detail: string }[] }>(`${gw.httpUrl}/api/v1/rejects`);
  const r = rejects.body.rejects.find((x) => x.reason === 'too_many_machines');
  expect(r?.detail).toContain('machineId "press-03" is new');
  expect(r?.detail).toContain('ingest.maxMachines 2');
  await gw.stop({ keepData: true });

  // After a restart the two known machines still count: press-02 is taken, press-04 is not.
  const again = await startTestGateway({ ingest: { maxMachines: 2 } }, { dataDir });
  open.push(() => again.stop({ keepData: true }));
  await publishAll(again, ['press-04', 'press-02']);
  await waitFor(async () => (await rejected(again)) === 1, 5000, 'press-04 rejected after the restart');
  const readings = await waitFor(async () => {
    const x = await getJson<{ readings: unknown[] }>(`${again.httpUrl}/api/v1/machines/press-02/readings`);
    return x.body.readings.length === 2 ? x.body.readings : undefined;
  }, 5000, 'press-02 readings before and after the restart');
  expect(readings).toHaveLength(2);
  expect(await machineIds(again)).toEqual(['press-01', 'press-02']);
});
