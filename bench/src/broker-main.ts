/**
 * The broker on its own: main-thread busy time and CPU time per QoS 1 message of the gateway's
 * Broker (aedes, the packet guard, the ACL, real validation by Ingest) with the durable append
 * replaced by an immediate callback, so the figure is the MQTT path and nothing else. 1000
 * publishers (bench/src/mqtt-raw.ts, in a child process) send single 4-metric readings to
 * `machines/<id>/telemetry` at a fixed rate; nobody subscribes (as on most sites). Each run is a
 * fresh broker process; `--modes` alternates the routing skip (routing.ts) on and off.
 *
 *   npx tsx bench/src/broker-main.ts [--rate 8000] [--seconds 10] [--modes on,off,on,off]
 *
 * Prints one JSON line per run: offered and acknowledged msg/s, broker main-thread busy us and
 * process CPU us per message (and its user-mode part: the socket system calls are most of the
 * rest), scavenges per 100k messages, publisher CPU.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance, PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Broker } from '../../gateway/src/broker/broker.js';
import { encodePublish, RawMqttClient, topicField } from './mqtt-raw.js';
import { startBareBroker } from '../../test/helpers/broker.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    rate: { type: 'string', default: '8000' },
    seconds: { type: 'string', default: '10' },
    machines: { type: 'string', default: '1000' },
    modes: { type: 'string', default: 'on,off,on,off' },
    mode: { type: 'string', default: 'on' },
    port: { type: 'string', default: '0' },
  },
});
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const MACHINES = Number(values.machines);
const SELF = fileURLToPath(import.meta.url);

type Msg = { t: 'port'; port: number } | { t: 'go' } | { t: 'stop' } | { t: 'result'; r: Record<string, number> } | { t: 'ready' };

function once<T extends Msg['t']>(cp: ChildProcess | NodeJS.Process, t: T): Promise<Extract<Msg, { t: T }>> {
  return new Promise((resolve) => {
    const on = (m: Msg): void => {
      if (m.t !== t) return;
      cp.off('message', on);
      resolve(m as Extract<Msg, { t: T }>);
    };
    cp.on('message', on);
  });
}
const send = (cp: ChildProcess | NodeJS.Process, m: Msg): void => void cp.send?.(m);

async function brokerRole(): Promise<void> {
  const { broker, registry, port } = await startBareBroker({
    // Durable append stand-in: the commit "completes" on the next turn, as a group commit would.
    outbox: { append: async () => undefined, appendThen: (_r, done) => void setImmediate(done, null) },
    broker: { maxConnections: MACHINES + 10, connectTimeoutMs: 30000 },
  });
  if (values.mode === 'off') broker.aedes.routing.switchOff('broker-main --modes off');
  let scavenges = 0;
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === 1) scavenges++;
  }).observe({ entryTypes: ['gc'] });
  send(process, { t: 'port', port });
  await once(process, 'go');
  const received0 = Number(/smartops_mqtt_messages_received_total\{transport="mqtt"\} (\S+)/.exec(await registry.metrics())?.[1] ?? 0);
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const sc0 = scavenges;
  const t0 = performance.now();
  await once(process, 'stop');
  const wallMs = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const received = Number(/smartops_mqtt_messages_received_total\{transport="mqtt"\} (\S+)/.exec(await registry.metrics())?.[1] ?? 0) - received0;
  send(process, {
    t: 'result',
    r: {
      received,
      busyUsPerMsg: (elu.active * 1000) / received,
      cpuUsPerMsg: (cpu.user + cpu.system) / received,
      userUsPerMsg: cpu.user / received,
      mainBusyPct: elu.utilization * 100,
      scavengesPer100k: ((scavenges - sc0) * 100_000) / received,
      unrouted: broker.aedes.unroutedPublishes,
      wallMs,
    },
  });
  await broker.close();
  process.exit(0);
}

async function publisherRole(): Promise<void> {
  const port = Number(values.port);
  const clients: RawMqttClient[] = [];
  let acked = 0;
  const inflight = new Array<number>(MACHINES).fill(0);
  for (let i = 0; i < MACHINES; i++) {
    const idx = i;
    clients.push(await RawMqttClient.connect('127.0.0.1', port, `m${i}`, { onPuback: () => (acked++, inflight[idx]!--) }));
  }
  const topics = clients.map((_, i) => topicField(`machines/m${i}/telemetry`));
  send(process, { t: 'ready' });
  await once(process, 'go');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  let skipped = 0;
  let seq = 0;
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      const elapsed = performance.now() - t0;
      const due = Math.floor((elapsed / 1000) * RATE);
      while (sent + skipped < due) {
        const i = (sent + skipped) % MACHINES;
        // At most 10 unacknowledged per connection, as the benchmark's load generator: a schedule
        // that cannot be kept is skipped and counted, not sent in a burst later.
        if (inflight[i]! >= 10) {
          skipped++;
          continue;
        }
        const c = clients[i]!;
        const ts = 1_700_000_000_000 + seq++;
        const payload = Buffer.from(`{"ts":${Date.now() - 1000},"seq":${ts},"metrics":{"temp_c":${40 + (i % 7) * 0.1},"current_a":12.5,"vibration_mm_s":2.25,"pressure_bar":6.1}}`);
        c.write(encodePublish(topics[i]!, payload, 1, c.allocId()));
        inflight[i]!++;
        sent++;
      }
      if (elapsed >= SECONDS * 1000) {
        clearInterval(iv);
        resolve();
      }
    }, 1);
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  send(process, { t: 'result', r: { sent, skipped, acked, offeredPerS: sent / wall, pubCpuPct: ((cpu.user + cpu.system) / 1e6 / wall) * 100 } });
  for (const c of clients) c.socket.destroy();
  process.exit(0);
}

async function main(): Promise<void> {
  for (const mode of (values.modes ?? 'on').split(',')) {
    const broker = fork(SELF, ['--role', 'broker', '--mode', mode, '--machines', String(MACHINES)], { stdio: 'inherit' });
    const { port } = await once(broker, 'port');
    const pub = fork(SELF, ['--role', 'pub', '--port', String(port), '--rate', String(RATE), '--seconds', String(SECONDS), '--machines', String(MACHINES)], { stdio: 'inherit' });
    await once(pub, 'ready');
    // Warm-up: one second of load before the measured window (JIT, pools).
    send(pub, { t: 'go' });
    await new Promise((r) => setTimeout(r, 1000));
    send(broker, { t: 'go' });
    const p = once(pub, 'result');
    await new Promise((r) => setTimeout(r, (SECONDS - 1.5) * 1000));
    send(broker, { t: 'stop' });
    const b = (await once(broker, 'result')).r;
    const q = (await p).r;
    const round = (x: number | undefined): number => Math.round((x ?? 0) * 100) / 100;
    process.stdout.write(
      `${JSON.stringify({
        at: new Date().toISOString(),
        mode,
        offeredPerS: round(q.offeredPerS),
        brokerMsgPerS: round(((b.received ?? 0) * 1000) / (b.wallMs ?? 1)),
        busyUsPerMsg: round(b.busyUsPerMsg),
        cpuUsPerMsg: round(b.cpuUsPerMsg),
        userUsPerMsg: round(b.userUsPerMsg),
        mainBusyPct: round(b.mainBusyPct),
        scavengesPer100k: round(b.scavengesPer100k),
        unrouted: b.unrouted,
        skipped: q.skipped,
        pubCpuPct: round(q.pubCpuPct),
      })}\n`,
    );
  }
}

if (values.role === 'broker') void brokerRole();
else if (values.role === 'pub') void publisherRole();
else void main();
