#!/usr/bin/env node
/**
 * Publish simulated machine readings to an MQTT broker (the gateway's, usually).
 * Run: npm run simulate -- --help
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, Option } from 'commander';
import { telemetryTopic } from '../../../gateway/src/contract/reading.js';
import { FAULT_CLOCKS, type FaultClock } from '../course.js';
import { formatDuration, parseDuration, parseTimePoint } from '../duration.js';
import { SimError } from '../errors.js';
import { createFleet, DEFAULT_MIX, labelsToJsonl, type FaultRequest, type Fleet, type FleetOptions } from '../fleet.js';
import { Publisher, type BrokerAuthOptions } from '../mqtt/publisher.js';
import { loadScenario, parseFaultSpec, scenarioFaults, type Scenario } from '../scenario.js';
import { MACHINE_KINDS, SCHEDULES, type MachineKind, type ScheduleName, type SimReading } from '../types.js';
import { collect, fail, parsePositive, parseQos, ProgressLine } from './common.js';

interface SimulateOpts extends BrokerAuthOptions {
  broker: string;
  machines?: string;
  mix?: string;
  rate?: string;
  speed: string;
  seed?: string;
  start?: string;
  duration?: string;
  fault: string[];
  scenario?: string;
  labels?: string;
  qos: string;
  batch: string;
  utcOffset?: string;
  schedule?: string;
  faultClock?: string;
  maxInflight: string;
  allowFuture?: boolean;
  progress: boolean;
}

function parseMix(raw: string): Partial<Record<MachineKind, number>> {
  const mix: Partial<Record<MachineKind, number>> = {};
  for (const part of raw.split(',')) {
    const [k, w] = part.split(':');
    if (!k || !(MACHINE_KINDS as readonly string[]).includes(k.trim())) {
      throw new SimError('SIM_UNKNOWN_KIND', `--mix "${raw}": unknown kind "${k ?? ''}" (known: ${MACHINE_KINDS.join(', ')})`);
    }
    const n = Number(w ?? '1');
    if (!Number.isFinite(n) || n < 0) throw new SimError('SIM_BAD_OPTION', `--mix "${raw}": weight of ${k} must be a number >= 0`);
    mix[k.trim() as MachineKind] = n;
  }
  return mix;
}

/** Build the fleet options from scenario + command line (command line wins). */
export function resolveRun(o: SimulateOpts, now: number): { fleetOpts: FleetOptions; speed: number; durationMs: number | undefined; scenario: Scenario | undefined } {
  const scenario = o.scenario ? loadScenario(o.scenario) : undefined;
  const speed = o.speed === 'max' ? Number.POSITIVE_INFINITY : parsePositive('speed', o.speed);
  const rate = o.rate !== undefined ? parsePositive('rate', o.rate) : (scenario?.rate ?? 1);
  const durationMs = o.duration !== undefined ? parseDuration(o.duration, '--duration') : undefined;
  let startTs: number;
  const startText = o.start ?? scenario?.start;
  if (startText !== undefined) startTs = parseTimePoint(startText, now, '--start');
  else if (speed === 1) startTs = now;
  // faster than real time: start in the past so the run can catch up with the wall clock
  else startTs = now - (durationMs ?? 24 * 3_600_000);
  const seed = o.seed !== undefined ? Number(o.seed) : (scenario?.seed ?? 1);
  if (!Number.isInteger(seed)) throw new SimError('SIM_BAD_OPTION', `--seed ${o.seed}: expected an integer`);
  let machines: FleetOptions['machines'];
  if (o.machines !== undefined) machines = parsePositive('machines', o.machines, true);
  else machines = scenario?.machines ?? 12;
  const faults: FaultRequest[] = [...(scenario ? scenarioFaults(scenario, now) : []), ...o.fault.map((f) => parseFaultSpec(f, now))];
  const utcOffsetMinutes =
    o.utcOffset !== undefined ? Number(o.utcOffset) : (scenario?.utcOffsetMinutes ?? -new Date(startTs).getTimezoneOffset());
  if (!Number.isInteger(utcOffsetMinutes)) throw new SimError('SIM_BAD_OPTION', `--utc-offset ${o.utcOffset}: expected whole minutes`);
  const schedule = o.schedule ?? scenario?.schedule;
  if (schedule !== undefined && !(SCHEDULES as readonly string[]).includes(schedule)) {
    throw new SimError('SIM_BAD_OPTION', `--schedule ${schedule}: expected one of ${SCHEDULES.join(', ')}`);
  }
  const fleetOpts: FleetOptions = {
    machines,
    seed,
    startTs,
    stepMs: Math.max(1, Math.round(1000 / rate)),
    faults,
    utcOffsetMinutes,
    mix: o.mix !== undefined ? parseMix(o.mix) : (scenario?.mix ?? DEFAULT_MIX),
  };
  if (schedule !== undefined) fleetOpts.schedule = schedule as ScheduleName;
  const faultClock = o.faultClock ?? scenario?.faultClock;
  if (faultClock !== undefined) {
    if (!(FAULT_CLOCKS as readonly string[]).includes(faultClock)) throw new SimError('SIM_BAD_OPTION', `--fault-clock ${faultClock}: expected one of ${FAULT_CLOCKS.join(', ')}`);
    fleetOpts.faultClock = faultClock as FaultClock;
  }
  return { fleetOpts, speed, durationMs, scenario };
}

function activeFaults(fleet: Fleet, ts: number): string {
  const parts: string[] = [];
  for (const [i, f] of fleet.faults.entries()) {
    if (ts < f.onsetTs) continue;
    if (f.repairTs !== undefined && ts >= f.repairTs) continue;
    // on the fault's clock: an operating-clock fault stands still while its machine is off shift
    const pct = f.failureTs > f.onsetTs ? Math.min(100, Math.round(100 * fleet.progress(i, ts))) : 100;
    parts.push(`${f.machine}:${f.fault} ${pct >= 100 ? 'FAILED' : `${pct}%`}`);
  }
  return parts.length ? ` faults ${parts.join(', ')}` : '';
}

export async function runSimulate(o: SimulateOpts): Promise<void> {
  const now = Date.now();
  const { fleetOpts, speed, durationMs } = resolveRun(o, now);
  const qos = parseQos(o.qos);
  const batch = parsePositive('batch', o.batch, true);
  const fleet = createFleet(fleetOpts);
  const endTs = durationMs !== undefined ? fleet.startTs + durationMs : undefined;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  if (fleet.startTs < now - 29 * 86_400_000) log('warning: readings older than 30 days are rejected by the gateway (ingest.maxAgeMs); choose a later --start');
  if (o.labels) {
    mkdirSync(dirname(o.labels), { recursive: true });
    writeFileSync(o.labels, labelsToJsonl(fleet.labels));
  }
  log(
    `simulating ${fleet.machines.length} machines (${MACHINE_KINDS.map((k) => `${fleet.machines.filter((m) => m.kind === k).length} ${k}`).join(', ')}) ` +
      `seed ${fleet.seed}, ${1000 / fleet.stepMs}/s each, speed ${speed === Infinity ? 'max' : `x${speed}`}, ` +
      `start ${new Date(fleet.startTs).toISOString()}${endTs !== undefined ? `, until ${new Date(endTs).toISOString()}` : ''}`,
  );
  for (const f of fleet.labels) log(`fault ${f.machine} (${f.kind}) ${f.fault}${f.channel ? `/${f.channel}` : ''}: onset ${new Date(f.onsetTs).toISOString()}, failure ${new Date(f.failureTs).toISOString()}`);

  const brokerOpts: Parameters<typeof Publisher.connect>[0] = { url: o.broker, maxInflight: parsePositive('max-inflight', o.maxInflight, true) };
  for (const k of ['username', 'password', 'ca', 'cert', 'key', 'clientId'] as const) if (o[k] !== undefined) brokerOpts[k] = o[k];
  if (o.insecure) brokerOpts.insecure = true;
  const pub = await Publisher.connect(brokerOpts, log);

  let stopping = false;
  const stop = (): void => {
    stopping = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const buffers = new Map<string, SimReading[]>();
  const flush = async (machine: string): Promise<void> => {
    const buf = buffers.get(machine);
    if (!buf || buf.length === 0) return;
    buffers.set(machine, []);
    const payload =
      buf.length === 1 && batch === 1
        ? JSON.stringify({ ts: (buf[0] as SimReading).ts, metrics: (buf[0] as SimReading).metrics })
        : JSON.stringify({ readings: buf.map((r) => ({ ts: r.ts, metrics: r.metrics })) });
    await pub.publish(telemetryTopic(machine), payload, qos, buf.length);
  };

  const progress = new ProgressLine(o.progress);
  const wallStart = Date.now();
  let generated = 0;
  let rateMark = { t: wallStart, n: 0 };
  let rate = 0;
  let live = false;
  const render = (): string => {
    const s = pub.stats;
    const t = Date.now();
    if (t - rateMark.t >= 1000) {
      rate = ((s.readings - rateMark.n) * 1000) / (t - rateMark.t);
      rateMark = { t, n: s.readings };
    }
    const sim = fleet.nextTs - fleet.stepMs;
    return (
      `machines ${fleet.machines.length} | sent ${s.readings} readings (${s.messages} msgs) | ${rate.toFixed(0)}/s | ` +
      `sim ${new Date(Math.max(sim, fleet.startTs)).toISOString().replace('.000Z', 'Z')} (+${formatDuration(Math.max(0, sim - fleet.startTs))}${live ? ', live' : ''})` +
      `${s.connected ? '' : ' | DISCONNECTED'}${s.errors ? ` | errors ${s.errors}` : ''} | inflight ${s.inflight}${activeFaults(fleet, sim)}`
    );
  };

  while (!stopping) {
    const wall = Date.now();
    let target = speed === Infinity ? Number.POSITIVE_INFINITY : fleet.startTs + (wall - wallStart) * speed;
    if (!o.allowFuture && target >= wall) {
      target = wall; // never publish timestamps ahead of the wall clock
      live = true;
    }
    if (endTs !== undefined) target = Math.min(target, endTs - 1);
    let steps = 0;
    // bounded chunk per turn so signals, progress and the event loop get a look in
    while (fleet.nextTs <= target && steps < 2000 && !stopping) {
      const readings = fleet.step();
      steps++;
      for (const r of readings) {
        let buf = buffers.get(r.machine);
        if (!buf) buffers.set(r.machine, (buf = []));
        buf.push(r);
        generated++;
        if (buf.length >= batch) await flush(r.machine);
      }
    }
    progress.update(render);
    if (endTs !== undefined && fleet.nextTs >= endTs) break;
    if (steps < 2000) {
      // caught up with the target: flush partial batches once we are live-paced, then wait a tick
      if (live || batch === 1) for (const m of buffers.keys()) await flush(m);
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(5, fleet.stepMs / Math.min(speed, 1000)))));
    } else {
      await new Promise((r) => setImmediate(r));
    }
  }
  for (const m of buffers.keys()) await flush(m);
  await pub.drain();
  progress.update(render, true);
  progress.done();
  const s = pub.stats;
  log(`done: ${generated} readings generated, ${s.readings} sent in ${s.messages} messages, ${s.errors} publish errors, ${s.reconnects} reconnects, simulated ${formatDuration(fleet.nextTs - fleet.startTs)} in ${formatDuration(Date.now() - wallStart)}`);
  await pub.end();
  if (s.errors > 0) process.exitCode = 1;
}

export function simulateCommand(): Command {
  return new Command('simulate')
    .description('Publish simulated shop-floor machine readings (with optional injected faults) to an MQTT broker.')
    .option('--broker <url>', 'broker URL (mqtt://, mqtts://, ws://, wss://)', 'mqtt://localhost:1883')
    .option('--machines <n>', 'number of machines (default 12, or the scenario\'s)')
    .option('--mix <kinds>', `kind weights, e.g. cnc:5,compressor:2,pump:3,conveyor:2 (kinds: ${MACHINE_KINDS.join(', ')})`)
    .option('--rate <n>', 'readings per second of simulated time per machine (default 1)')
    .option('--speed <n|max>', 'simulated seconds per wall second; "max" = as fast as the broker takes them', '1')
    .option('--seed <n>', 'PRNG seed: same seed, same readings (default 1)')
    .option('--start <time>', 'simulated start: now, -2h, ISO-8601 or epoch ms (default: now at --speed 1, else now minus --duration or 24h)')
    .option('--duration <dur>', 'stop after this much simulated time, e.g. 30m, 8h, 7d (default: run until Ctrl-C)')
    .option('--fault <spec>', 'inject a fault: <machine>:<fault>[/<channel>]@<onset>[+<duration-to-failure>], repeatable', collect, [])
    .option('--scenario <file>', 'JSON/YAML scenario (machines, mix, seed, start, rate, faults)')
    .option('--labels <file>', 'write ground-truth fault labels as JSON lines')
    .addOption(new Option('--qos <0|1>', 'MQTT QoS').default('1'))
    .option('--batch <n>', 'readings per message (a {"readings":[...]} batch when > 1)', '1')
    .option('--username <user>', 'MQTT username')
    .option('--password <pass>', 'MQTT password')
    .option('--ca <file>', 'CA certificate (PEM) for mqtts/wss')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client private key (PEM)')
    .option('--insecure', 'do not verify the broker certificate (testing only)')
    .option('--client-id <id>', 'MQTT client id')
    .option('--utc-offset <minutes>', 'site local time offset from UTC for shifts and the daily temperature cycle (default: this host\'s)')
    .option('--schedule <name>', `work pattern for all machines: ${SCHEDULES.join(', ')}`)
    .option('--fault-clock <clock>', 'what mechanical/process faults progress with: operating (running time, default) or calendar')
    .option('--max-inflight <n>', 'publishes outstanding at most (back-pressure)', '100')
    .option('--allow-future', 'let simulated timestamps run ahead of the wall clock (the gateway rejects > 5 min ahead)')
    .option('--no-progress', 'no progress line on stderr')
    .action(async (opts: SimulateOpts) => {
      try {
        await runSimulate(opts);
      } catch (e) {
        fail(e);
      }
    });
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/simulate.ts')) {
  await simulateCommand().parseAsync(process.argv);
}
