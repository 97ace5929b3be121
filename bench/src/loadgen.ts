/**
 * Load-generator child process (forked by bench.ts with an IPC channel). Roles:
 * - pub: N simulated machines, one MQTT connection each, publishing 4-metric readings at a paced
 *   total rate (open loop with bounded catch-up), QoS 0 or 1, single or batch messages;
 * - sub: one QoS 1 subscriber counting what it receives (Mosquitto reference);
 * - influx: raw line-protocol batches to InfluxDB /write (InfluxDB's own ceiling).
 * Every loop is bounded in time by the orchestrator's commands and in memory by the QoS 1 window.
 */
import { Hist } from './stats.js';
import { RawMqttClient, encodePublish, topicField } from './mqtt-raw.js';
import type { ChildMsg, CmdMsg, InitMsg } from './protocol.js';

const send = (m: ChildMsg): void => {
  process.send?.(m);
};

function fail(e: unknown): never {
  send({ type: 'error', message: (e as Error).stack ?? String(e) });
  setTimeout(() => process.exit(1), 100);
  throw e;
}

// ---------------------------------------------------------------- publisher
interface Machine {
  id: string;
  idx: number;
  topic: Buffer;
  client: RawMqttClient | null;
  lastTs: number;
  inflight: Map<number, { t: number; n: number }>;
  probe: boolean;
  base: [number, number, number, number];
}

const METRICS = ['temp_c', 'current_a', 'vibration_mm_s', 'pressure_bar'] as const;

function noise(): number {
  // Roughly normal, sd ~0.5: cheap and good enough for detection to see a spread.
  return Math.random() + Math.random() - 1;
}

function readingJson(m: Machine, ts: number): string {
  const b = m.base;
  return `{"ts":${ts},"metrics":{"temp_c":${Math.round((b[0] + noise()) * 100) / 100},"current_a":${Math.round((b[1] + noise() * 0.3) * 100) / 100},"vibration_mm_s":${Math.round((b[2] + noise() * 0.1) * 1000) / 1000},"pressure_bar":${Math.round((b[3] + noise() * 0.05) * 100) / 100}}}`;
}

async function runPub(init: Extract<InitMsg, { role: 'pub' }>): Promise<void> {
  const probes = new Set(init.probes);
  const machines: Machine[] = init.machines.map((id, idx) => ({
    id,
    idx,
    topic: topicField(`machines/${id}/telemetry`),
    client: null,
    lastTs: 0,
    inflight: new Map(),
    probe: probes.has(id),
    base: [40 + (idx % 17), 8 + (idx % 5), 1.5 + (idx % 7) * 0.1, 6 + (idx % 3) * 0.2],
  }));
  let sentMsgs = 0;
  let sentReadings = 0;
  let ackedMsgs = 0;
  let ackedReadings = 0;
  let skipped = 0;
  let disconnects = 0;
  let inflightTotal = 0;
  const ackHist = new Hist();
  let probeOut: [string, number, number][] = [];
  let drainWaiter: (() => void) | null = null;

  const t0 = Date.now();
  // Connect with bounded concurrency (a real shop floor does not connect 5000 devices in one tick).
  let next = 0;
  const connectOne = async (): Promise<void> => {
    while (next < machines.length) {
      const m = machines[next++] as Machine;
      m.client = await RawMqttClient.connect(init.host, init.port, `bench-${m.id}`, {
        onPuback: (id) => {
          const f = m.inflight.get(id);
          if (!f) return;
          m.inflight.delete(id);
          inflightTotal--;
          ackedMsgs++;
          ackedReadings += f.n;
          ackHist.add(Date.now() - f.t);
          if (inflightTotal === 0 && drainWaiter) drainWaiter();
        },
        onClose: () => {
          disconnects++;
          // What was in flight on this connection is never acknowledged; counted by the orchestrator as unacked.
          inflightTotal -= m.inflight.size;
          m.inflight.clear();
          m.client = null;
        },
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(100, machines.length) }, () => connectOne())).catch(fail);
  send({ type: 'ready', connectMs: Date.now() - t0 });

  const publish = (m: Machine, payload: string, n: number, newestTs: number): void => {
    const c = m.client;
    if (!c) return;
    const qos = init.qos;
    const id = qos > 0 ? c.allocId() : 0;
    const now = Date.now();
    if (qos > 0) {
      m.inflight.set(id, { t: now, n });
      inflightTotal++;
    }
    c.write(encodePublish(m.topic, Buffer.from(payload), qos, id));
    sentMsgs++;
    sentReadings += n;
    if (m.probe) probeOut.push([m.id, newestTs, now]);
  };

  const publishOne = (m: Machine): void => {
    const now = Date.now();
    if (init.batch <= 1) {
      const ts = Math.max(now, m.lastTs + 1);
      m.lastTs = ts;
      publish(m, readingJson(m, ts), 1, ts);
      return;
    }
    // A batch: consecutive readings ending at publish time (as a device that buffers its samples).
    let ts = Math.max(now - init.batch + 1, m.lastTs + 1);
    const parts: string[] = [];
    for (let i = 0; i < init.batch; i++) parts.push(readingJson(m, ts++));
    m.lastTs = ts - 1;
    publish(m, `{"readings":[${parts.join(',')}]}`, init.batch, ts - 1);
  };

  const canSend = (m: Machine): boolean => {
    const c = m.client;
    if (!c) return false;
    if (init.qos > 0) return m.inflight.size < init.window;
    return c.socket.writableLength < 256 * 1024;
  };

  // Pacer: open loop at msgRate; a backlog beyond 200 ms of schedule is skipped (counted), so a slow
  // broker shows as a lower achieved rate instead of an unbounded burst later.
  let msgRate = 0;
  let rateStart = Date.now();
  let sentSinceRate = 0;
  let cursor = 0;
  let paused = true;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    timer = undefined;
    if (paused || msgRate <= 0) return;
    const now = Date.now();
    let due = Math.floor((msgRate * (now - rateStart)) / 1000) - sentSinceRate;
    const maxDebt = Math.max(1, Math.ceil(msgRate * 0.2));
    if (due > maxDebt) {
      skipped += (due - maxDebt) * init.batch;
      sentSinceRate += due - maxDebt;
      due = maxDebt;
    }
    let idle = 0;
    const n = machines.length;
    while (due > 0 && idle < n) {
      const m = machines[cursor] as Machine;
      cursor = cursor + 1 === n ? 0 : cursor + 1;
      if (!canSend(m)) {
        idle++;
        continue;
      }
      idle = 0;
      publishOne(m);
      due--;
      sentSinceRate++;
    }
    timer = setTimeout(tick, 2);
  };

  const report = setInterval(() => {
    const cpu = process.cpuUsage();
    send({
      type: 'report',
      at: Date.now(),
      connected: machines.reduce((a, m) => a + (m.client?.isConnected ? 1 : 0), 0),
      disconnects,
      sentMsgs,
      sentReadings,
      ackedMsgs,
      ackedReadings,
      inflight: inflightTotal,
      skipped,
      ackHist: ackHist.counts.slice(),
      ackMax: ackHist.max,
      probes: probeOut,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
    });
    ackHist.reset();
    probeOut = [];
  }, 500);

  process.on('message', (raw: CmdMsg) => {
    if (raw.cmd === 'rate') {
      msgRate = raw.readingsPerSec / init.batch;
      rateStart = Date.now();
      sentSinceRate = 0;
      paused = msgRate <= 0;
      if (!paused && !timer) timer = setTimeout(tick, 0);
    } else if (raw.cmd === 'backfill') {
      void (async () => {
        const t = Date.now();
        let total = 0;
        for (const m of machines) {
          for (let from = raw.fromTs; from <= raw.toTs; ) {
            const parts: string[] = [];
            for (let ts = from; ts <= raw.toTs && parts.length < 1000; ts += raw.stepMs) parts.push(readingJson(m, ts));
            from += parts.length * raw.stepMs;
            m.lastTs = Math.max(m.lastTs, from - raw.stepMs);
            while (m.client && m.inflight.size >= Math.max(1, init.window)) await new Promise((r) => setTimeout(r, 2));
            const c = m.client;
            if (!c) break;
            const id = c.allocId();
            m.inflight.set(id, { t: Date.now(), n: parts.length });
            inflightTotal++;
            c.write(encodePublish(m.topic, Buffer.from(`{"readings":[${parts.join(',')}]}`), 1, id));
            sentMsgs++;
            sentReadings += parts.length;
            total += parts.length;
          }
          // Yield now and then so acks are read while we write.
          if (m.idx % 50 === 49) await new Promise((r) => setImmediate(r));
        }
        const deadline = Date.now() + 120_000;
        while (inflightTotal > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        send({ type: 'backfilled', readings: total, ms: Date.now() - t });
      })().catch(fail);
    } else if (raw.cmd === 'stop') {
      paused = true;
      msgRate = 0;
      void (async () => {
        if (inflightTotal > 0) {
          await Promise.race([new Promise<void>((r) => (drainWaiter = r)), new Promise((r) => setTimeout(r, raw.drainMs))]);
        }
        const unacked = inflightTotal;
        // One last report so the orchestrator has the final counters.
        await new Promise((r) => setTimeout(r, 550));
        clearInterval(report);
        await Promise.all(machines.map((m) => m.client?.end()));
        send({ type: 'stopped', unacked });
        setTimeout(() => process.exit(0), 50);
      })();
    }
  });
}

// ---------------------------------------------------------------- subscriber
async function runSub(init: Extract<InitMsg, { role: 'sub' }>): Promise<void> {
  let received = 0;
  const c = await RawMqttClient.connect(init.host, init.port, `bench-sub-${process.pid}`, {
    onPublish: () => {
      received++;
    },
  });
  await c.subscribe(init.filter, 1);
  send({ type: 'ready', connectMs: 0 });
  const report = setInterval(() => {
    const cpu = process.cpuUsage();
    send({ type: 'report', at: Date.now(), received, cpuUserUs: cpu.user, cpuSystemUs: cpu.system });
  }, 500);
  process.on('message', (raw: CmdMsg) => {
    if (raw.cmd === 'stop') {
      clearInterval(report);
      const cpu = process.cpuUsage();
      send({ type: 'report', at: Date.now(), received, cpuUserUs: cpu.user, cpuSystemUs: cpu.system });
      void c.end().then(() => {
        send({ type: 'stopped', unacked: 0 });
        setTimeout(() => process.exit(0), 50);
      });
    }
  });
}

// ---------------------------------------------------------------- InfluxDB writer
async function runInflux(init: Extract<InitMsg, { role: 'influx' }>): Promise<void> {
  // Same shape as the gateway's points: measurement telemetry, tag machine, 4 float fields, ms precision.
  // Point k: series k % series, timestamp base + floor(k / series) ms, so every point is distinct.
  const base = Date.now() - 3_600_000;
  let k = 0;
  const body = (): string => {
    const lines: string[] = [];
    for (let i = 0; i < init.batchSize; i++, k++) {
      const s = k % init.series;
      const ts = base + Math.floor(k / init.series);
      lines.push(
        `telemetry,machine=m-${s} temp_c=${(40 + Math.random()).toFixed(2)},current_a=${(8 + Math.random()).toFixed(2)},vibration_mm_s=${(1.5 + Math.random() * 0.1).toFixed(3)},pressure_bar=${(6 + Math.random() * 0.1).toFixed(2)} ${ts}`,
      );
    }
    return lines.join('\n');
  };
  const url = `${init.url}/write?db=${encodeURIComponent(init.db)}&precision=ms`;
  let points = 0;
  let requests = 0;
  let errors = 0;
  const lats: number[] = [];
  const start = Date.now();
  const end = start + init.durationMs;
  const worker = async (): Promise<void> => {
    while (Date.now() < end) {
      const b = body();
      const t = Date.now();
      try {
        const res = await fetch(url, { method: 'POST', body: b, signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        requests++;
        if (res.status === 204) {
          points += init.batchSize;
          lats.push(Date.now() - t);
        } else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: init.concurrency }, () => worker()));
  const elapsedMs = Date.now() - start;
  lats.sort((a, b) => a - b);
  const q = (p: number): number | null => (lats.length ? (lats[Math.min(lats.length - 1, Math.ceil(p * lats.length) - 1)] as number) : null);
  const cpu = process.cpuUsage();
  send({ type: 'done', points, requests, errors, elapsedMs, latP50Ms: q(0.5), latP99Ms: q(0.99), cpuUserUs: cpu.user, cpuSystemUs: cpu.system });
  setTimeout(() => process.exit(0), 50);
}

process.once('message', (init: InitMsg) => {
  const run = init.role === 'pub' ? runPub(init) : init.role === 'sub' ? runSub(init) : runInflux(init);
  run.catch(fail);
});
// The orchestrator going away ends us too (no orphaned load).
process.on('disconnect', () => process.exit(0));
