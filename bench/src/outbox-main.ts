/**
 * Outbox on its own: how much of the main thread its durable path takes (appends of single
 * 4-metric readings from 1000 machines, group commits with fsync=always, and a forwarder-like
 * read + ack of up to 5000 rows every 200 ms), measured as the main thread's event-loop
 * utilisation (performance.eventLoopUtilization: time not idle, which includes time blocked in
 * fsync), and the CPU time of the whole process (all threads) per reading. Independent of the
 * broker, InfluxDB and, mostly, of other load on the machine.
 *
 *   npx tsx bench/src/outbox-main.ts [--rate 15000] [--seconds 10]
 *
 * Prints one JSON line: fixed-rate phase (main busy %, busy us per reading, append->commit p50/p99,
 * time the main thread spent in the forwarder's ack() calls: per call p50/p99/max and in all)
 * and a closed-loop phase (readings/s when appends are let in while fewer than 2000 wait for the next
 * group commit, as ingest back-pressure does).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Outbox } from '../../gateway/src/outbox/outbox.js';

const { values } = parseArgs({ options: { rate: { type: 'string', default: '15000' }, seconds: { type: 'string', default: '10' } } });
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const MACHINES = 1000;

function reading(i: number): { machine: string; ts: number; metrics: Record<string, number> } {
  return { machine: `m${i % MACHINES}`, ts: 1_700_000_000_000 + i, metrics: { temp_c: 40 + (i % 7) * 0.1, current_a: 12.5 + (i % 5) * 0.01, vibration_mm_s: 2.25 + (i % 3) * 0.001, pressure_bar: 6.1 } };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'smartops-outbox-main-'));
  const box = new Outbox({ dir, fsync: 'always', commitIntervalMs: 2, maxBytes: 1 << 30, fullPolicy: 'reject', fullWaitMs: 5000 });
  let n = 0;
  // Forwarder stand-in: read the head, "write" it, delete it.
  let forwarding = true;
  let timing = false;
  const ackMs: number[] = [];
  const forward = async (): Promise<void> => {
    while (forwarding) {
      await new Promise((r) => setTimeout(r, 200));
      const batch = box.read(0, 5000);
      const last = batch[batch.length - 1];
      if (last) {
        const at = performance.now();
        box.ack(last.id);
        if (timing) ackMs.push(performance.now() - at);
      }
    }
  };
  const fwd = forward();
  await box.append([reading(n++)]); // worker (if any) started

  // Phase 1: fixed rate, paced every millisecond.
  const lat: number[] = [];
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  timing = true;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const due = Math.floor(((performance.now() - t0) / 1000) * RATE);
      while (sent < due) {
        const at = performance.now();
        void box.append([reading(n++)]).then(() => lat.push(performance.now() - at));
        sent++;
      }
      if (performance.now() - t0 >= SECONDS * 1000) {
        clearInterval(iv);
        resolve();
      }
    }, 1);
  });
  while (lat.length < sent) await new Promise((r) => setTimeout(r, 5));
  timing = false;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;

  // Phase 2: as fast as ingest back-pressure lets appends in (pendingReadings() < 2000, the
  // default ingest.maxPendingReadings), re-checked whenever the outbox settles a commit.
  let done = 0;
  let issued = 0;
  const t1 = performance.now();
  await new Promise<void>((resolve) => {
    const over = (): boolean => performance.now() - t1 >= SECONDS * 1000;
    const pump = (): void => {
      while (!over() && box.pendingReadings() < 2000) {
        issued++;
        void box.append([reading(n++)]).then(() => {
          done++;
        });
      }
    };
    box.on('settled', () => setImmediate(pump));
    const iv = setInterval(() => {
      if (over() && done === issued) {
        clearInterval(iv);
        resolve();
      }
    }, 20);
    pump();
  });
  const maxRate = done / ((performance.now() - t1) / 1000);
  forwarding = false;
  await fwd;
  box.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      rate: RATE,
      achieved: Math.round(sent / (wall / 1000)),
      mainBusyPct: Math.round(elu.utilization * 1000) / 10,
      mainBusyUsPerReading: Math.round(((elu.active * 1000) / sent) * 100) / 100,
      processCpuUsPerReading: Math.round(((cpu.user + cpu.system) / sent) * 100) / 100,
      commitP50Ms: Math.round(quantile(lat, 0.5) * 100) / 100,
      commitP99Ms: Math.round(quantile(lat, 0.99) * 100) / 100,
      acks: ackMs.length,
      ackMsP50: Math.round(quantile(ackMs, 0.5) * 1000) / 1000,
      ackMsP99: Math.round(quantile(ackMs, 0.99) * 1000) / 1000,
      ackMsMax: Math.round(Math.max(0, ...ackMs) * 1000) / 1000,
      ackMsTotal: Math.round(ackMs.reduce((a, b) => a + b, 0) * 10) / 10,
      closedLoopReadingsPerS: Math.round(maxRate),
    }),
  );
}

void main();
