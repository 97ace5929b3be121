/**
 * `npm run bench` (tsx bench/src/bench.ts): end-to-end benchmark of the gateway on this machine,
 * with a real InfluxDB 1.x and Mosquitto as reference points. Prints figures and writes
 * bench/results/bench-<time>-<mode>.json. A script, not a test. Method: bench/README.md.
 *
 *   npx tsx bench/src/bench.ts --quick          # ~3-4 minutes
 *   npx tsx bench/src/bench.ts                  # full, ~20-25 minutes
 *   npx tsx bench/src/bench.ts --only qos1-single,profile --machines 1000
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { createFleet } from '../../simulators/src/index.js';
import { formatSummary, summariseFile, type ProfileSummary } from './cpuprofile.js';
import { influxdVersion, startInfluxdServer, type Influxd as BenchInfluxd } from '../../test/helpers/influxd-server.js';
import { freePort, hostFacts, loadAverage, procSample, systemBusySeconds, type ProcSample } from './procstat.js';
import type { ChildMsg, CmdMsg, InfluxReport, InitMsg, PubReport, SubReport } from './protocol.js';
import { Hist, quantile, round } from './stats.js';
import { LAUNCH_NODE_FLAGS } from '../../gateway/src/launch.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PHASES = ['influx', 'mosquitto', 'qos1-single', 'qos1-batch', 'qos0-single', 'qos0-batch', 'scaling', 'outbox', 'alert', 'profile'] as const;
type Phase = (typeof PHASES)[number];

// ------------------------------------------------------------------------------------------- options
const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    gateway: { type: 'string', default: 'snapshot' },
    machines: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '50' },
    workers: { type: 'string', default: '2' },
    only: { type: 'string' },
    skip: { type: 'string' },
    out: { type: 'string' },
    set: { type: 'string', multiple: true },
    scaling: { type: 'string' },
    'node-flags': { type: 'string' },
    'profile-batch': { type: 'string', default: '1' },
    'profile-rate': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (argv.help) {
  process.stdout.write(`usage: tsx bench/src/bench.ts [--quick] [--gateway snapshot|dist|tsx] [--machines N] [--batch N]
       [--workers N] [--only phase,...] [--skip phase,...] [--out file.json] [--set key.path=value ...]
       [--scaling 10,100,1000,5000] [--node-flags="--max-old-space-size=256 ..."]
       [--profile-batch N] [--profile-rate readings/s]
phases: ${PHASES.join(', ')}
--gateway snapshot (default): compile the current source with tsc into bench/.build and run it with node;
          dist: run dist/ as built by \`npm run build\`; tsx: run the TypeScript source through tsx.
--set     a gateway config override for every gateway started (value parsed as JSON when it parses),
          e.g. --set sink.flushIntervalMs=200 --set outbox.commitIntervalMs=10
--profile-batch / --profile-rate: the profile phase's readings per QoS 1 message (default 1) and
          offered rate (default: the QoS 1 single-reading maximum of this run, else 8,000/s)
`);
  process.exit(0);
}
const QUICK = argv.quick === true;
const parsePhases = (s: string | undefined): Phase[] | null =>
  s
    ? s.split(',').map((p) => {
        if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only/--skip: unknown phase "${p}" (known: ${PHASES.join(', ')})`);
        return p as Phase;
      })
    : null;
const only = parsePhases(argv.only);
const skip = parsePhases(argv.skip) ?? [];
const defaultPhases: Phase[] = QUICK ? ['influx', 'mosquitto', 'qos1-single', 'qos1-batch', 'qos0-single', 'scaling', 'outbox', 'alert', 'profile'] : [...PHASES];
const phases = (only ?? defaultPhases).filter((p) => !skip.includes(p));
const HEADLINE_MACHINES = Number(argv.machines);
const BATCH = Number(argv.batch);
const WORKERS = Math.max(1, Number(argv.workers));
/** Gateway config overrides from --set key.path=value. */
const OVERRIDES: [string[], unknown][] = (argv.set ?? []).map((kv) => {
  const i = kv.indexOf('=');
  if (i < 1) throw new Error(`--set ${kv}: expected key.path=value`);
  const raw = kv.slice(i + 1);
  let v: unknown = raw;
  try {
    v = JSON.parse(raw);
  } catch {
    // a plain string
  }
  return [kv.slice(0, i).split('.'), v];
});
function applyOverrides(config: Record<string, unknown>): void {
  for (const [path, v] of OVERRIDES) {
    let cur = config;
    for (const k of path.slice(0, -1)) cur = (cur[k] ??= {}) as Record<string, unknown>;
    cur[path[path.length - 1] as string] = v;
  }
}
const GATEWAY_MODE = argv.gateway as 'snapshot' | 'dist' | 'tsx';
if (!['snapshot', 'dist', 'tsx'].includes(GATEWAY_MODE)) throw new Error('--gateway must be snapshot, dist or tsx');

const P: { stepS: number; rampS: number; confirmS: number; latencyS: number; maxSteps: number; influxS: number; mosqS: number; scaling: number[]; scalingSteps: number; outboxFillS: number; profileS: number; factor: number } = QUICK
  ? { stepS: 6, rampS: 1.5, confirmS: 10, latencyS: 8, maxSteps: 7, influxS: 5, mosqS: 6, scaling: [10, 100, 1000], scalingSteps: 3, outboxFillS: 10, profileS: 10, factor: 1.6 }
  : { stepS: 12, rampS: 2, confirmS: 30, latencyS: 20, maxSteps: 10, influxS: 10, mosqS: 10, scaling: [10, 100, 1000, 5000], scalingSteps: 4, outboxFillS: 25, profileS: 20, factor: 1.4 };
if (argv.scaling) P.scaling = argv.scaling.split(',').map(Number);
/** Gateway sink batch size (config default); the outbox is "not behind" while it holds about one batch. */
const SINK_BATCH = 5000;

const log = (s: string): void => {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const mb = (b: number | null | undefined): number | null => (b == null ? null : Math.round((b / 2 ** 20) * 10) / 10);

// Everything started here is stopped on exit, by pid (never by name).
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void> | void)[] = [];
async function cleanupAll(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch {
      // best effort
    }
  }
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
}
process.on('SIGINT', () => {
  void cleanupAll().then(() => process.exit(130));
});

// ------------------------------------------------------------------------------------------- gateway
function buildSnapshot(): string {
  const out = join(ROOT, 'bench', '.build');
  log(`compiling the gateway source into ${out} (tsc -p tsconfig.build.json)`);
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  // Type errors still emit JavaScript (noEmitOnError is off); other helpers may be mid-edit, so only warn.
  if (r.status !== 0) log(`tsc reported ${(r.stdout.match(/error TS/g) ?? []).length} type errors (JavaScript emitted anyway)`);
  const cli = join(out, 'gateway/src/cli.js');
  if (!existsSync(cli)) throw new Error(`tsc produced no ${cli}: ${r.stdout.slice(0, 2000)}`);
  return cli;
}

let gatewayEntry: { argsPrefix: string[]; describe: string } | null = null;
function gatewayCommand(): { argsPrefix: string[]; describe: string } {
  if (gatewayEntry) return gatewayEntry;
  if (GATEWAY_MODE === 'tsx') gatewayEntry = { argsPrefix: ['--import', 'tsx', join(ROOT, 'gateway/src/cli.ts')], describe: 'node --import tsx gateway/src/cli.ts' };
  else if (GATEWAY_MODE === 'dist') {
    const cli = join(ROOT, 'dist/gateway/src/cli.js');
    if (!existsSync(cli)) throw new Error('dist/gateway/src/cli.js missing: run `npm run build` or use --gateway snapshot');
    gatewayEntry = { argsPrefix: [cli], describe: 'node dist/gateway/src/cli.js (npm run build)' };
  } else {
    gatewayEntry = { argsPrefix: [buildSnapshot()], describe: 'node bench/.build/gateway/src/cli.js (tsc snapshot of the working tree, compiled JavaScript)' };
  }
  return gatewayEntry;
}

interface Gw {
  pid: number;
  httpUrl: string;
  mqttPort: number;
  db: string;
  proc: ChildProcess;
  output: () => string;
  /** V8 heap after the most recent / largest mark-compact (live set), from --trace-gc; null before the first. */
  gc: { lastLiveMB: number | null; maxLiveMB: number | null; markCompacts: number };
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<number | null>;
}

let gwSeq = 0;
async function startGateway(influx: BenchInfluxd, opts: { detection?: Record<string, unknown>; cpuProfDir?: string; label: string }): Promise<Gw> {
  const cmd = gatewayCommand();
  const dataDir = mkdtempSync(join(tmpdir(), 'smartops-bench-gw-'));
  const mqttPort = await freePort();
  const httpPort = await freePort();
  const db = `bench_${Date.now().toString(36)}_${gwSeq++}`;
  const config: Record<string, unknown> = {
    dataDir,
    log: { level: 'warn', pretty: 'never' },
    mqtt: { host: '127.0.0.1', port: mqttPort, allowAnonymous: true, maxConnections: 20000 },
    http: { host: '127.0.0.1', port: httpPort, rateLimit: { max: 1_000_000, windowMs: 60_000 } },
    influx: { url: influx.url, database: db },
    // Retries capped at 2 s so the outbox phase measures catch-up, not back-off.
    sink: { type: 'influxdb-v1', retryInitialMs: 200, retryMaxMs: 2000 },
    detection: opts.detection ?? BENCH_DETECTION,
  };
  applyOverrides(config);
  const cfgFile = join(dataDir, 'bench-config.json');
  writeFileSync(cfgFile, JSON.stringify(config, null, 2));
  // --trace-gc: the heap size after each mark-compact is the live set, which RSS alone does not show.
  const extra = argv['node-flags'] ? argv['node-flags'].split(/\s+/).filter(Boolean) : [];
  // The shipped launchers' flags, as they start it, unless --node-flags sets the same flag itself.
  const launch = LAUNCH_NODE_FLAGS.filter((f) => !extra.some((e) => e.split('=')[0] === f.split('=')[0]));
  const execArgs = ['--trace-gc', ...launch, ...extra, ...(opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [])];
  const gc = { lastLiveMB: null as number | null, maxLiveMB: null as number | null, markCompacts: 0 };
  let partial = '';
  // MALLOC_ARENA_MAX as the Dockerfile and the systemd unit set it (docs/deployment.md "Memory").
  const proc = spawn(process.execPath, [...execArgs, ...cmd.argsPrefix, '--config', cfgFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' } });
  children.add(proc);
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-8000);
  };
  proc.stdout?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    // BENCH_GC_LOG=file keeps the whole GC trace (with --node-flags=--trace-gc-nvp: bench/src/gclog.ts).
    if (process.env.BENCH_GC_LOG) appendFileSync(process.env.BENCH_GC_LOG, `${lines.join('\n')}\n`);
    for (const l of lines) {
      // e.g. "[123:0x...]  5012 ms: Mark-Compact 180.2 (190.1) -> 95.3 (120.4) MB, ..."
      const m = /Mark-Compact(?: \(reduce\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/.exec(l);
      if (m) {
        const live = Number(m[3]);
        gc.markCompacts++;
        gc.lastLiveMB = live;
        gc.maxLiveMB = Math.max(gc.maxLiveMB ?? 0, live);
      } else if (!/Scavenge|Mark-Compact|Mark-sweep/.test(l)) keep(Buffer.from(`${l}\n`));
    }
  });
  proc.stderr?.on('data', keep);
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`gateway exited with code ${proc.exitCode}:\n${out}`);
    try {
      const res = await fetch(`${httpUrl}/health`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`gateway did not answer /health within 60 s:\n${out}`);
    await sleep(100);
  }
  const gw: Gw = {
    pid: proc.pid as number,
    httpUrl,
    mqttPort,
    db,
    proc,
    gc,
    output: () => out,
    async metrics() {
      const res = await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      const m = new Map<string, number>();
      for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const sp = line.lastIndexOf(' ');
        const full = line.slice(0, sp);
        const name = full.replace(/\{.*\}$/, '');
        const v = Number(line.slice(sp + 1));
        if (!Number.isFinite(v)) continue;
        m.set(name, (m.get(name) ?? 0) + v);
        if (full !== name) m.set(full, v);
      }
      return m;
    },
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const code = await new Promise<number | null>((resolve) => {
        proc.once('exit', (c) => resolve(c));
        proc.kill('SIGTERM');
        setTimeout(() => proc.kill('SIGKILL'), 30_000).unref();
      });
      children.delete(proc);
      rmSync(dataDir, { recursive: true, force: true });
      return code;
    },
  };
  log(`gateway [${opts.label}] pid ${gw.pid} mqtt :${mqttPort} http :${httpPort} db ${db}`);
  return gw;
}

/**
 * Detection for the throughput runs: on, with a 60 s baseline (the minimum) learnt from back-filled
 * history before the load starts, so every window during the load is scored by the ONNX model
 * (steady state), not merely collected for learning.
 */
const BENCH_DETECTION = {
  windowMs: 10_000,
  hopMs: 5_000,
  baseline: { durationMs: 60_000, minWindows: 10 },
};

// ------------------------------------------------------------------------------------------- load generators
interface Worker<R> {
  proc: ChildProcess;
  last: R | null;
  on(type: ChildMsg['type'], f: (m: ChildMsg) => void): void;
  wait(type: ChildMsg['type'], timeoutMs: number): Promise<ChildMsg>;
  send(c: CmdMsg): void;
}

function forkWorker<R>(init: InitMsg, onReport?: (r: R) => void): Worker<R> {
  const proc = fork(join(ROOT, 'bench/src/loadgen.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const handlers: { type: string; f: (m: ChildMsg) => void }[] = [];
  const w: Worker<R> = {
    proc,
    last: null,
    on(type, f) {
      handlers.push({ type, f });
    },
    wait(type, timeoutMs) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`load generator: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
        const h = { type, f: (m: ChildMsg) => {
          clearTimeout(t);
          handlers.splice(handlers.indexOf(h), 1);
          resolve(m);
        } };
        handlers.push(h);
      });
    },
    send(c) {
      if (proc.connected) proc.send(c);
    },
  };
  proc.on('message', (m: ChildMsg) => {
    if (m.type === 'error') log(`load generator error: ${m.message}`);
    if (m.type === 'report') {
      w.last = m as unknown as R;
      onReport?.(m as unknown as R);
    }
    for (const h of handlers.slice()) if (h.type === m.type) h.f(m);
  });
  proc.send(init);
  return w;
}

/** Publish-to-stored latency from probe machines (see README "Method"). */
class ProbeTracker {
  private pending = new Map<string, [number, number][]>();
  private obs = new Map<string, [number, number][]>();
  hist = new Hist();
  add(entries: [string, number, number][]): void {
    for (const [m, ts, pub] of entries) {
      let q = this.pending.get(m);
      if (!q) this.pending.set(m, (q = []));
      q.push([ts, pub]);
    }
    this.match();
  }
  observe(machine: string, lastTs: number, at: number): void {
    let o = this.obs.get(machine);
    if (!o) this.obs.set(machine, (o = []));
    const prev = o[o.length - 1];
    if (!prev || lastTs > prev[0]) o.push([lastTs, at]);
  }
  match(): void {
    for (const [m, q] of this.pending) {
      const o = this.obs.get(m);
      if (!o) continue;
      let j = 0;
      let i = 0;
      for (; i < q.length; i++) {
        const [ts, pub] = q[i] as [number, number];
        while (j < o.length && (o[j] as [number, number])[0] < ts) j++;
        if (j >= o.length) break;
        this.hist.add(Math.max(0, (o[j] as [number, number])[1] - pub));
      }
      q.splice(0, i);
      o.splice(0, Math.max(0, j - 1));
    }
  }
  unmatched(): number {
    let n = 0;
    for (const q of this.pending.values()) n += q.length;
    return n;
  }
}

interface Load {
  workers: Worker<PubReport>[];
  machines: string[];
  qos: 0 | 1;
  batch: number;
  probes: ProbeTracker;
  totals(): { sentReadings: number; ackedReadings: number; sentMsgs: number; ackedMsgs: number; inflight: number; skipped: number; connected: number; disconnects: number; cpuS: number };
  ackHist: Hist;
  setRate(readingsPerSec: number): void;
  backfill(fromTs: number, toTs: number, stepMs: number): Promise<number>;
  stop(): Promise<number>;
  pids(): number[];
}

async function startLoad(port: number, n: number, qos: 0 | 1, batch: number, opts: { window?: number; prefix?: string } = {}): Promise<Load> {
  const prefix = opts.prefix ?? 'm';
  const width = String(n - 1).length;
  const machines = Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(width, '0')}`);
  // Four probe machines spread over the fleet (and over the workers).
  const probeIds = [...new Set([0, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4)].map((i) => machines[i] as string))];
  const probes = new ProbeTracker();
  const ackHist = new Hist();
  const nw = Math.min(WORKERS, n);
  const workers: Worker<PubReport>[] = [];
  const parts: string[][] = Array.from({ length: nw }, () => []);
  machines.forEach((m, i) => (parts[i % nw] as string[]).push(m));
  const t0 = Date.now();
  for (const part of parts) {
    workers.push(
      forkWorker<PubReport>(
        { role: 'pub', host: '127.0.0.1', port, machines: part, qos, batch, window: opts.window ?? (batch > 1 ? 16 : Math.min(100, Math.max(10, Math.ceil(20_000 / n)))), probes: probeIds.filter((p) => part.includes(p)) },
        (r) => {
          probes.add(r.probes);
          ackHist.merge({ counts: r.ackHist, max: r.ackMax });
        },
      ),
    );
  }
  await Promise.all(workers.map((w) => w.wait('ready', 300_000)));
  log(`  ${n} MQTT connections (QoS ${qos}, ${batch > 1 ? `batches of ${batch}` : 'single readings'}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const share = parts.map((p) => p.length / n);
  return {
    workers,
    machines,
    qos,
    batch,
    probes,
    ackHist,
    totals() {
      const t = { sentReadings: 0, ackedReadings: 0, sentMsgs: 0, ackedMsgs: 0, inflight: 0, skipped: 0, connected: 0, disconnects: 0, cpuS: 0 };
      for (const w of workers) {
        const r = w.last;
        if (!r) continue;
        t.sentReadings += r.sentReadings;
        t.ackedReadings += r.ackedReadings;
        t.sentMsgs += r.sentMsgs;
        t.ackedMsgs += r.ackedMsgs;
        t.inflight += r.inflight;
        t.skipped += r.skipped;
        t.connected += r.connected;
        t.disconnects += r.disconnects;
        t.cpuS += (r.cpuUserUs + r.cpuSystemUs) / 1e6;
      }
      return t;
    },
    setRate(rps) {
      workers.forEach((w, i) => w.send({ cmd: 'rate', readingsPerSec: rps * (share[i] as number) }));
    },
    async backfill(fromTs, toTs, stepMs) {
      const done = workers.map((w) => w.wait('backfilled', 300_000));
      for (const w of workers) w.send({ cmd: 'backfill', fromTs, toTs, stepMs });
      const r = await Promise.all(done);
      await sleep(600); // one more report with the final counters
      return r.reduce((a, m) => a + (m.type === 'backfilled' ? m.readings : 0), 0);
    },
    async stop() {
      const done = workers.map((w) => w.wait('stopped', 60_000));
      for (const w of workers) w.send({ cmd: 'stop', drainMs: 30_000 });
      const r = await Promise.all(done);
      return r.reduce((a, m) => a + (m.type === 'stopped' ? m.unacked : 0), 0);
    },
    pids: () => workers.map((w) => w.proc.pid as number),
  };
}

// ------------------------------------------------------------------------------------------- measurement
interface Snap {
  t: number;
  gen: ReturnType<Load['totals']>;
  gwm: Map<string, number>;
  gw: ProcSample | null;
  influx: ProcSample | null;
  sysBusyS: number;
}

async function snap(gw: Gw, influx: BenchInfluxd, load: Load): Promise<Snap> {
  const gwm = await gw.metrics();
  const ip = influx.pid();
  return { t: Date.now(), gen: load.totals(), gwm, gw: procSample(gw.pid), influx: ip ? procSample(ip) : null, sysBusyS: systemBusySeconds() };
}

/** Poll InfluxDB for the newest stored reading of each probe machine (publish-to-stored latency). */
function startProbePoller(influx: BenchInfluxd, db: string, load: Load, intervalMs = 100): () => Promise<void> {
  let running = true;
  const ids = [...new Set([0, Math.floor(load.machines.length / 4), Math.floor(load.machines.length / 2), Math.floor((3 * load.machines.length) / 4)].map((i) => load.machines[i] as string))];
  const where = ids.map((m) => `"machine"='${m}'`).join(' OR ');
  const q = `SELECT last("temp_c") FROM "telemetry" WHERE time > now() - 10m AND time < now() + 1h AND (${where}) GROUP BY "machine"`;
  let prevSend = Date.now();
  const loop = (async () => {
    while (running) {
      const sent = Date.now();
      try {
        const series = await influx.series(q, db);
        const got = Date.now();
        // Visible at some moment between the previous poll and this answer: take the middle.
        const at = (prevSend + got) / 2;
        for (const s of series) {
          const m = s.tags?.machine;
          const ts = s.values[0]?.[0];
          if (m && typeof ts === 'number') load.probes.observe(m, ts, at);
        }
        load.probes.match();
      } catch {
        // database not created yet, or InfluxDB paused
      }
      prevSend = sent;
      await sleep(Math.max(0, intervalMs - (Date.now() - sent)));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

const MINOR_GC_COUNT = 'smartops_nodejs_gc_duration_seconds_count{kind="minor"}';
const MINOR_GC_SUM = 'smartops_nodejs_gc_duration_seconds_sum{kind="minor"}';

interface StepResult {
  target: number;
  achieved: number;
  stored: number;
  depthStart: number;
  depthEnd: number;
  ackP50Ms: number | null;
  ackP99Ms: number | null;
  latP50Ms: number | null;
  latP99Ms: number | null;
  latSamples: number;
  gwCpuPct: number | null;
  influxCpuPct: number | null;
  genCpuPct: number | null;
  /** CPU used by everything else on the machine (other helpers' tests, the orchestrator), % of one core. */
  otherCpuPct: number | null;
  gwRssMB: number | null;
  gwHeapUsedMB: number | null;
  /** Share of machines with a fitted baseline (scored by the model) at the end of the step. */
  scoringShare: number;
  gwExternalMB: number | null;
  /** Outbox group commits per second and their mean duration (transaction + fsync, on the event loop). */
  commitsPerSec: number | null;
  commitMeanMs: number | null;
  /** Main-thread time in GC (all kinds) during the step, % of wall time (prom-client's perf_hooks GC histogram). */
  gcPct: number | null;
  /** Young-generation collections (scavenges) per 100,000 readings stored, and their mean pause. */
  scavengesPer100k: number | null;
  scavengeMeanMs: number | null;
  skipped: number;
  rejected: number;
  behind: boolean;
  why: string[];
}

/** Hold `rate` for `seconds`, measuring after `rampS`; then settle (drain the outbox) unless told not to. */
async function runStep(gw: Gw, influx: BenchInfluxd, load: Load, rate: number, seconds: number, settle = true): Promise<StepResult> {
  load.setRate(rate);
  await sleep(P.rampS * 1000);
  const a = await snap(gw, influx, load);
  load.ackHist.reset();
  load.probes.hist.reset();
  await sleep(Math.max(1000, (seconds - P.rampS) * 1000));
  const b = await snap(gw, influx, load);
  const dt = (b.t - a.t) / 1000;
  const achieved = ((load.qos > 0 ? b.gen.ackedReadings - a.gen.ackedReadings : b.gen.sentReadings - a.gen.sentReadings) / dt);
  const stored = ((b.gwm.get('smartops_sink_readings_written_total') ?? 0) - (a.gwm.get('smartops_sink_readings_written_total') ?? 0)) / dt;
  const depthStart = a.gwm.get('smartops_outbox_depth') ?? 0;
  const depthEnd = b.gwm.get('smartops_outbox_depth') ?? 0;
  const rejected = (b.gwm.get('smartops_messages_rejected_total') ?? 0) - (a.gwm.get('smartops_messages_rejected_total') ?? 0);
  const cpuPct = (x: ProcSample | null, y: ProcSample | null): number | null => (x && y ? round(((y.cpuSeconds - x.cpuSeconds) / dt) * 100, 0) : null);
  const why: string[] = [];
  if (achieved < 0.95 * rate) why.push(`${load.qos > 0 ? 'acknowledged' : 'published'} ${Math.round(achieved)}/s < 95% of offered`);
  // The sink writes in batches of up to SINK_BATCH, so over a short window the stored rate is lumpy by one batch.
  if (stored < 0.9 * achieved - SINK_BATCH / dt) why.push(`stored ${Math.round(stored)}/s < 90% of accepted`);
  if (depthEnd - depthStart > 0.05 * achieved * dt && depthEnd > 2 * SINK_BATCH) why.push(`outbox grew ${depthStart} -> ${depthEnd}`);
  if (depthEnd > 2 * rate + 2 * SINK_BATCH) why.push(`outbox depth ${depthEnd} > 2 s of load`);
  const ackP99 = load.ackHist.quantile(0.99);
  if (load.qos > 0 && ackP99 !== null && ackP99 > 1000) why.push(`ack p99 ${Math.round(ackP99)} ms > 1 s`);
  if (rejected > 0) why.push(`${rejected} messages rejected`);
  if (b.gen.disconnects > a.gen.disconnects) why.push(`${b.gen.disconnects - a.gen.disconnects} disconnects`);
  const r: StepResult = {
    target: Math.round(rate),
    achieved: Math.round(achieved),
    stored: Math.round(stored),
    depthStart,
    depthEnd,
    ackP50Ms: round(load.ackHist.quantile(0.5), 1),
    ackP99Ms: round(ackP99, 1),
    latP50Ms: round(load.probes.hist.quantile(0.5), 0),
    latP99Ms: round(load.probes.hist.quantile(0.99), 0),
    latSamples: load.probes.hist.n,
    gwCpuPct: cpuPct(a.gw, b.gw),
    influxCpuPct: cpuPct(a.influx, b.influx),
    genCpuPct: round(((b.gen.cpuS - a.gen.cpuS) / dt) * 100, 0),
    otherCpuPct: null,
    gwRssMB: mb(b.gw?.rssBytes),
    gwHeapUsedMB: mb(b.gwm.get('smartops_nodejs_heap_size_used_bytes') ?? null),
    scoringShare: round(scoringShare(b.gwm), 3) as number,
    gwExternalMB: mb(b.gwm.get('smartops_nodejs_external_memory_bytes') ?? null),
    commitsPerSec: round(((b.gwm.get('smartops_outbox_commit_duration_seconds_count') ?? 0) - (a.gwm.get('smartops_outbox_commit_duration_seconds_count') ?? 0)) / dt, 0),
    commitMeanMs: round(
      (((b.gwm.get('smartops_outbox_commit_duration_seconds_sum') ?? 0) - (a.gwm.get('smartops_outbox_commit_duration_seconds_sum') ?? 0)) * 1000) /
        Math.max(1, (b.gwm.get('smartops_outbox_commit_duration_seconds_count') ?? 0) - (a.gwm.get('smartops_outbox_commit_duration_seconds_count') ?? 0)),
      2,
    ),
    gcPct: round((((b.gwm.get('smartops_nodejs_gc_duration_seconds_sum') ?? 0) - (a.gwm.get('smartops_nodejs_gc_duration_seconds_sum') ?? 0)) / dt) * 100, 1),
    scavengesPer100k: stored > 0 ? round((((b.gwm.get(MINOR_GC_COUNT) ?? 0) - (a.gwm.get(MINOR_GC_COUNT) ?? 0)) / (stored * dt)) * 100_000, 1) : null,
    scavengeMeanMs: round(
      (((b.gwm.get(MINOR_GC_SUM) ?? 0) - (a.gwm.get(MINOR_GC_SUM) ?? 0)) * 1000) / Math.max(1, (b.gwm.get(MINOR_GC_COUNT) ?? 0) - (a.gwm.get(MINOR_GC_COUNT) ?? 0)),
      2,
    ),
    skipped: b.gen.skipped - a.gen.skipped,
    rejected,
    behind: why.length > 0,
    why,
  };
  const mine = (r.gwCpuPct ?? 0) + (r.influxCpuPct ?? 0) + (r.genCpuPct ?? 0);
  r.otherCpuPct = round(((b.sysBusyS - a.sysBusyS) / dt) * 100 - mine, 0);
  log(
    `  offered ${fmt(r.target)}/s: ${load.qos > 0 ? 'acked' : 'sent'} ${fmt(r.achieved)}/s stored ${fmt(r.stored)}/s outbox ${depthStart}->${depthEnd} ack p99 ${r.ackP99Ms ?? '-'} ms, stored p50/p99 ${r.latP50Ms ?? '-'}/${r.latP99Ms ?? '-'} ms; cpu gw ${r.gwCpuPct}% influxd ${r.influxCpuPct}% gen ${r.genCpuPct}% other ${r.otherCpuPct}%; rss ${r.gwRssMB} MB (heap ${r.gwHeapUsedMB}); commits ${r.commitsPerSec}/s x ${r.commitMeanMs} ms; gc ${r.gcPct}% (${r.scavengesPer100k} scavenges/100k readings x ${r.scavengeMeanMs} ms); scored ${Math.round(r.scoringShare * 100)}%${r.behind ? `  BEHIND: ${why.join('; ')}` : ''}`,
  );
  if (settle) {
    load.setRate(0);
    await waitDrained(gw, load, 20_000);
  }
  return r;
}

async function waitDrained(gw: Gw, load: Load | null, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = await gw.metrics().catch(() => null);
    const inflight = load ? load.totals().inflight : 0;
    if (m && (m.get('smartops_outbox_depth') ?? 0) === 0 && inflight === 0) return true;
    await sleep(250);
  }
  return false;
}

const fmt = (n: number | null | undefined): string => (n == null ? '-' : Math.round(n).toLocaleString('en-US'));

/** Step the offered rate up by `factor` until the gateway falls behind; one refinement between the last pass and the first fail. */
async function ladder(gw: Gw, influx: BenchInfluxd, load: Load, start: number, factor: number, maxSteps: number, stepS: number): Promise<{ steps: StepResult[]; best: StepResult | null }> {
  const steps: StepResult[] = [];
  let rate = start;
  let best: StepResult | null = null;
  let fail: number | null = null;
  for (let i = 0; i < maxSteps; i++) {
    const r = await runStep(gw, influx, load, rate, stepS);
    steps.push(r);
    if (r.behind) {
      fail = rate;
      // Started above the ceiling: halve (at most three times) until a step holds.
      if (!best && rate > 500 && steps.length <= 3) {
        rate = Math.round(rate / 2);
        continue;
      }
      break;
    }
    best = r;
    if (fail !== null) break;
    rate *= factor;
  }
  if (best && fail && steps.length < maxSteps + 1) {
    const mid = Math.round((best.target + fail) / 2);
    const r = await runStep(gw, influx, load, mid, stepS);
    steps.push(r);
    if (!r.behind) best = r;
  }
  return { steps, best };
}

async function countStored(influx: BenchInfluxd, db: string): Promise<number> {
  const s = await influx.series(`SELECT count("temp_c") FROM "telemetry" WHERE time > now() - 1d AND time < now() + 1d`, db);
  const v = s[0]?.values[0]?.[1];
  return typeof v === 'number' ? v : 0;
}

async function modelsInfo(gw: Gw): Promise<{ inferenceRuns: number; windowsScored: number; meanLatencyMs: number } | null> {
  try {
    const res = await fetch(`${gw.httpUrl}/api/v1/models`);
    const j = (await res.json()) as { models: { inferenceRuns: number; windowsScored: number; meanLatencyMs: number }[] };
    const m = j.models[0];
    return m ? { inferenceRuns: m.inferenceRuns, windowsScored: m.windowsScored, meanLatencyMs: round(m.meanLatencyMs, 2) as number } : null;
  } catch {
    return null;
  }
}

/** Back-fill 80 s of history per machine so detection has fitted every baseline before the load (steady state). */
/** Share of the machines detection tracks that have a fitted baseline (phase scoring), from /metrics. */
function scoringShare(m: Map<string, number>): number {
  const s = m.get('smartops_detect_machines{phase="scoring"}') ?? 0;
  const l = m.get('smartops_detect_machines{phase="learning"}') ?? 0;
  return s + l > 0 ? s / (s + l) : 0;
}

async function warmUp(gw: Gw, load: Load): Promise<{ readings: number; seconds: number; scoringMachines: boolean; scoringShare: number; fitsPerSec: number | null }> {
  const t = Date.now();
  const now = Date.now();
  const readings = await load.backfill(now - 90_000, now - 5_000, 1000);
  await waitDrained(gw, load, 60_000);
  // Baselines are fitted while the back-fill is ingested; wait until the gateway is idle again.
  let prev = procSample(gw.pid);
  for (let i = 0; i < 30; i++) {
    await sleep(1000);
    const cur = procSample(gw.pid);
    if (prev && cur && cur.cpuSeconds - prev.cpuSeconds < 0.3) break;
    prev = cur;
  }
  // A baseline is fitted when a machine's next window closes, at most 4 per scoring batch, on the event
  // loop. Keep a light live load (2 readings/s per machine) until every machine is scored (steady
  // state) or the time bound passes; the share reached is reported with the figures.
  const fitDeadline = Date.now() + (QUICK ? 20_000 : 45_000);
  const f0 = (await gw.metrics()).get('smartops_detect_baselines_fitted_total') ?? 0;
  const tf = Date.now();
  load.setRate(Math.min(10_000, Math.max(200, 2 * load.machines.length)));
  let share = 0;
  let fitted = f0;
  for (;;) {
    await sleep(2000);
    const m = await gw.metrics();
    share = scoringShare(m);
    fitted = m.get('smartops_detect_baselines_fitted_total') ?? 0;
    if (share >= 1 || Date.now() > fitDeadline) break;
  }
  load.setRate(0);
  await waitDrained(gw, load, 30_000);
  return {
    readings,
    seconds: round((Date.now() - t) / 1000, 1) as number,
    scoringMachines: share >= 1,
    scoringShare: round(share, 3) as number,
    fitsPerSec: round((fitted - f0) / ((Date.now() - tf) / 1000), 1),
  };
}

interface ScenarioResult {
  name: string;
  qos: 0 | 1;
  batch: number;
  machines: number;
  warmUp: Awaited<ReturnType<typeof warmUp>>;
  steps: StepResult[];
  sustainedMax: number | null;
  confirm: StepResult | null;
  atHalf: StepResult | null;
  published: number;
  acknowledged: number;
  stored: number;
  loss: number;
  unackedAtStop: number;
  latencyUnmatched: number;
  gatewayRssPeakMB: number | null;
  gatewayLiveHeapMaxMB: number | null;
  gatewayCpuSeconds: number | null;
  inference: Awaited<ReturnType<typeof modelsInfo>>;
  gatewayExitCode: number | null;
}

async function scenario(influx: BenchInfluxd, name: string, n: number, qos: 0 | 1, batch: number, start: number, opts: { factor?: number; maxSteps?: number; confirm?: boolean } = {}): Promise<ScenarioResult> {
  log(`== ${name}: ${n} machines, QoS ${qos}, ${batch > 1 ? `batches of ${batch} readings` : '1 reading per message'}, 4 metrics per reading`);
  const gw = await startGateway(influx, { label: name });
  const load = await startLoad(gw.mqttPort, n, qos, batch);
  const stopPoll = startProbePoller(influx, gw.db, load);
  try {
    const warm = await warmUp(gw, load);
    log(`  warm-up: ${fmt(warm.readings)} back-filled readings in ${warm.seconds} s; machines with a fitted baseline (scored) ${Math.round(warm.scoringShare * 1000) / 10}%, ${warm.fitsPerSec ?? '-'} baseline fits/s`);
    const { steps, best } = await ladder(gw, influx, load, start, opts.factor ?? P.factor, opts.maxSteps ?? P.maxSteps, P.stepS);
    let confirm: StepResult | null = null;
    let atHalf: StepResult | null = null;
    if (best && opts.confirm !== false) {
      log(`  confirm ${fmt(best.target)}/s for ${P.confirmS} s`);
      confirm = await runStep(gw, influx, load, best.target, P.confirmS);
      if (confirm.behind) {
        // The ladder's short step held but the long one did not: confirm 20% lower once.
        log(`  did not hold for ${P.confirmS} s; confirm ${fmt(best.target * 0.8)}/s`);
        confirm = await runStep(gw, influx, load, best.target * 0.8, P.confirmS);
      }
      const half = (confirm.behind ? best.target : confirm.target) / 2;
      log(`  publish-to-stored latency at half of it (${fmt(half)}/s) for ${P.latencyS} s`);
      atHalf = await runStep(gw, influx, load, half, P.latencyS);
    }
    const unacked = await load.stop();
    await stopPoll();
    const drained = await waitDrained(gw, null, 60_000);
    if (!drained) log('  WARNING: outbox not empty 60 s after the load stopped');
    await sleep(500);
    const totals = load.totals();
    const stored = await countStored(influx, gw.db);
    const inference = await modelsInfo(gw);
    const ps = procSample(gw.pid);
    const code = await gw.stop();
    // Sustained = the confirmation run's stored rate when it held; else the best short step (flagged in the JSON).
    const sustained = confirm && !confirm.behind ? confirm.stored : best ? best.stored : null;
    const expected = qos > 0 ? totals.ackedReadings : totals.sentReadings;
    const res: ScenarioResult = {
      name,
      qos,
      batch,
      machines: n,
      warmUp: warm,
      steps,
      sustainedMax: sustained,
      confirm,
      atHalf,
      published: totals.sentReadings,
      acknowledged: totals.ackedReadings,
      stored,
      loss: Math.max(0, expected - stored),
      unackedAtStop: unacked,
      latencyUnmatched: load.probes.unmatched(),
      gatewayRssPeakMB: mb(ps?.hwmBytes),
      gatewayLiveHeapMaxMB: gw.gc.maxLiveMB,
      gatewayCpuSeconds: round(ps?.cpuSeconds, 1),
      inference,
      gatewayExitCode: code,
    };
    log(
      `  => sustained ${fmt(res.sustainedMax)} readings/s end to end; published ${fmt(res.published)}, acked ${fmt(res.acknowledged)}, in InfluxDB ${fmt(stored)}, loss ${fmt(res.loss)}; RSS peak ${res.gatewayRssPeakMB} MB (largest live heap ${res.gatewayLiveHeapMaxMB ?? '-'} MB), CPU ${res.gatewayCpuSeconds} s; inference ${inference?.meanLatencyMs ?? '-'} ms/batch`,
    );
    return res;
  } finally {
    await stopPoll();
    for (const w of load.workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    if (gw.proc.exitCode === null) await gw.stop();
  }
}

// ------------------------------------------------------------------------------------------- references
async function influxCeiling(influx: BenchInfluxd): Promise<{ concurrency: number; pointsPerSec: number; p50Ms: number | null; p99Ms: number | null; clientCpuPct: number; influxCpuPct: number | null }[]> {
  log('== reference: InfluxDB write ceiling (raw line protocol, 5000 points per POST, 1000 series, 4 fields)');
  await influx.series('CREATE DATABASE "bench_ceiling"');
  const out = [];
  for (const concurrency of [1, 4]) {
    const ip = influx.pid();
    const sys0 = systemBusySeconds();
    const a = ip ? procSample(ip) : null;
    const w = forkWorker({ role: 'influx', url: influx.url, db: 'bench_ceiling', batchSize: SINK_BATCH, concurrency, durationMs: P.influxS * 1000, series: 1000 });
    const r = (await w.wait('done', P.influxS * 1000 + 120_000)) as InfluxReport;
    const b = ip ? procSample(ip) : null;
    const pps = Math.round(r.points / (r.elapsedMs / 1000));
    const o = {
      concurrency,
      pointsPerSec: pps,
      p50Ms: r.latP50Ms,
      p99Ms: r.latP99Ms,
      clientCpuPct: Math.round(((r.cpuUserUs + r.cpuSystemUs) / 1e6 / (r.elapsedMs / 1000)) * 100),
      influxCpuPct: a && b ? Math.round(((b.cpuSeconds - a.cpuSeconds) / (r.elapsedMs / 1000)) * 100) : null,
      errors: r.errors,
      otherCpuPct: 0,
    };
    o.otherCpuPct = Math.round(((systemBusySeconds() - sys0) / (r.elapsedMs / 1000)) * 100) - (o.influxCpuPct ?? 0) - o.clientCpuPct;
    log(`  concurrency ${concurrency}: ${fmt(pps)} points/s (POST p50 ${r.latP50Ms} ms, p99 ${r.latP99Ms} ms; influxd CPU ${o.influxCpuPct}%, client ${o.clientCpuPct}%, other ${o.otherCpuPct}%)`);
    out.push(o);
  }
  await influx.series('DROP DATABASE "bench_ceiling"');
  return out;
}

async function mosquittoReference(): Promise<Record<string, unknown> | null> {
  const probe = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
  if (probe.error) {
    log('== reference: Mosquitto not installed (apt-get install mosquitto); skipped');
    return null;
  }
  log('== reference: Mosquitto alone, 100 publishers -> 1 subscriber, QoS 1, same 4-metric single-reading messages');
  const dir = mkdtempSync(join(tmpdir(), 'smartops-bench-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // Defaults except: no persistence, no logging, no cap on the subscriber's queue (nothing is dropped:
  // the figure is what reaches the subscriber) and 1000 messages in flight to it (default 20), so the
  // figure is the broker's, not one connection's round trip.
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\nmax_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 1000\nset_tcp_nodelay true\n`);
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(proc);
  try {
    await sleep(500);
    const sub = forkWorker<SubReport>({ role: 'sub', host: '127.0.0.1', port, filter: 'machines/+/telemetry' });
    await sub.wait('ready', 30_000);
    const load = await startLoad(port, 100, 1, 1);
    const results: Record<string, unknown>[] = [];
    // Offered well above what it carries; the QoS 1 window (100 per publisher) closes the loop.
    for (const offered of [400_000]) {
      load.setRate(offered);
      await sleep(2000);
      const a = { sys: systemBusySeconds(), t: Date.now(), rx: sub.last?.received ?? 0, gen: load.totals(), m: procSample(proc.pid as number), subCpu: sub.last ? (sub.last.cpuUserUs + sub.last.cpuSystemUs) / 1e6 : 0 };
      await sleep(P.mosqS * 1000);
      const b = { sys: systemBusySeconds(), t: Date.now(), rx: sub.last?.received ?? 0, gen: load.totals(), m: procSample(proc.pid as number), subCpu: sub.last ? (sub.last.cpuUserUs + sub.last.cpuSystemUs) / 1e6 : 0 };
      const dt = (b.t - a.t) / 1000;
      const r = {
        publishersAckedPerSec: Math.round((b.gen.ackedMsgs - a.gen.ackedMsgs) / dt),
        subscriberReceivedPerSec: Math.round((b.rx - a.rx) / dt),
        mosquittoCpuPct: a.m && b.m ? Math.round(((b.m.cpuSeconds - a.m.cpuSeconds) / dt) * 100) : null,
        mosquittoRssMB: mb(b.m?.rssBytes),
        publisherCpuPct: Math.round(((b.gen.cpuS - a.gen.cpuS) / dt) * 100),
        subscriberCpuPct: Math.round(((b.subCpu - a.subCpu) / dt) * 100),
        otherCpuPct: 0,
      };
      r.otherCpuPct = Math.round(((b.sys - a.sys) / dt) * 100) - (r.mosquittoCpuPct ?? 0) - r.publisherCpuPct - r.subscriberCpuPct;
      log(`  publishers acked ${fmt(r.publishersAckedPerSec)} msg/s, subscriber received ${fmt(r.subscriberReceivedPerSec)} msg/s (mosquitto CPU ${r.mosquittoCpuPct}%, publishers ${r.publisherCpuPct}%, subscriber ${r.subscriberCpuPct}%, other ${r.otherCpuPct}%)`);
      results.push(r);
    }
    load.setRate(0);
    await load.stop();
    sub.send({ cmd: 'stop', drainMs: 0 });
    await sub.wait('stopped', 10_000).catch(() => undefined);
    return { version: probe.stdout.split('\n')[0] ?? probe.stderr.split('\n')[0], ...results[0] };
  } finally {
    proc.kill('SIGTERM');
    children.delete(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------- scaling, outbox, alert, profile
async function scaling(influx: BenchInfluxd, headline: number | null): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const n of P.scaling) {
    log(`== scaling: ${n} machines, QoS 1 single readings, detection on`);
    const gw = await startGateway(influx, { label: `scale-${n}` });
    const idle0 = procSample(gw.pid);
    const load = await startLoad(gw.mqttPort, n, 1, 1);
    try {
      const afterConnect = procSample(gw.pid);
      const warm = await warmUp(gw, load);
      const afterWarm = procSample(gw.pid);
      const warmMetrics = await gw.metrics();
      const liveAfterWarm = gw.gc.lastLiveMB;
      const start = Math.max(2000, Math.round((headline ?? 10_000) * 0.5));
      const { steps, best } = await ladder(gw, influx, load, start, 1.25, P.scalingSteps, Math.min(P.stepS, 10));
      const unacked = await load.stop();
      await waitDrained(gw, null, 60_000);
      const stored = await countStored(influx, gw.db);
      const t = load.totals();
      const end = procSample(gw.pid);
      const inference = await modelsInfo(gw);
      const r = {
        machines: n,
        sustainedMax: best?.stored ?? null,
        reachedCeiling: steps.some((s) => s.behind),
        rssStartMB: mb(idle0?.rssBytes),
        rssConnectedMB: mb(afterConnect?.rssBytes),
        rssAfterWarmUpMB: mb(afterWarm?.rssBytes),
        heapUsedAfterWarmUpMB: mb(warmMetrics.get('smartops_nodejs_heap_size_used_bytes') ?? null),
        externalAfterWarmUpMB: mb(warmMetrics.get('smartops_nodejs_external_memory_bytes') ?? null),
        rssPeakMB: mb(end?.hwmBytes),
        liveHeapAfterWarmUpMB: liveAfterWarm,
        liveHeapMaxMB: gw.gc.maxLiveMB,
        rssEndMB: mb(end?.rssBytes),
        cpuSeconds: round(end?.cpuSeconds, 1),
        warmUp: warm,
        loss: Math.max(0, t.ackedReadings - stored),
        unackedAtStop: unacked,
        inference,
        steps,
      };
      log(`  => ${n} machines: sustained ${fmt(r.sustainedMax)} readings/s${r.reachedCeiling ? '' : ' (ladder ended before the ceiling)'}, RSS connected ${r.rssConnectedMB} MB, after warm-up ${r.rssAfterWarmUpMB} MB (heap used ${r.heapUsedAfterWarmUpMB} MB, live heap after last mark-compact ${r.liveHeapAfterWarmUpMB ?? '-'} MB, external ${r.externalAfterWarmUpMB} MB), peak ${r.rssPeakMB} MB, loss ${r.loss}`);
      out.push(r);
    } finally {
      for (const w of load.workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
      await gw.stop();
    }
  }
  return out;
}

async function outboxGrowth(influx: BenchInfluxd, rate: number): Promise<Record<string, unknown>> {
  const n = Math.min(HEADLINE_MACHINES, 1000);
  log(`== memory vs outbox depth: InfluxDB stopped, ${n} machines publish ${fmt(rate)} readings/s (QoS 1) for ${P.outboxFillS} s, then InfluxDB restarted`);
  const gw = await startGateway(influx, { label: 'outbox' });
  const load = await startLoad(gw.mqttPort, n, 1, 1);
  try {
    await warmUp(gw, load);
    const samples: { t: number; depth: number; rssMB: number | null; heapMB: number | null }[] = [];
    const sample = async (t0: number): Promise<void> => {
      const m = await gw.metrics();
      const ps = procSample(gw.pid);
      samples.push({ t: round((Date.now() - t0) / 1000, 1) as number, depth: m.get('smartops_outbox_depth') ?? 0, rssMB: mb(ps?.rssBytes), heapMB: mb(m.get('smartops_nodejs_heap_size_used_bytes') ?? null) });
    };
    await influx.pause();
    const t0 = Date.now();
    load.setRate(rate);
    const fillEnd = t0 + P.outboxFillS * 1000;
    while (Date.now() < fillEnd) {
      await sample(t0);
      await sleep(1000);
    }
    load.setRate(0);
    await sleep(500);
    await sample(t0);
    const peakDepth = samples[samples.length - 1]?.depth ?? 0;
    const tr = Date.now();
    await influx.resume();
    let drainedAt: number | null = null;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      await sample(t0);
      if ((samples[samples.length - 1]?.depth ?? 1) === 0) {
        drainedAt = Date.now();
        break;
      }
      await sleep(500);
    }
    const first = samples[0];
    const top = samples.reduce((a, s) => (s.depth >= a.depth ? s : a), samples[0] as (typeof samples)[number]);
    const slope = first && top && top.depth > first.depth && first.rssMB !== null && top.rssMB !== null ? ((top.rssMB - first.rssMB) / (top.depth - first.depth)) * 100_000 : null;
    await load.stop();
    const stored = await countStored(influx, gw.db);
    const t = load.totals();
    const r = {
      machines: n,
      rate,
      peakDepth,
      rssAtStartMB: first?.rssMB ?? null,
      rssAtPeakDepthMB: top?.rssMB ?? null,
      rssPer100kWaitingMB: round(slope, 1),
      drainSeconds: drainedAt ? round((drainedAt - tr) / 1000, 1) : null,
      catchUpReadingsPerSec: drainedAt ? Math.round(peakDepth / ((drainedAt - tr) / 1000)) : null,
      loss: Math.max(0, t.ackedReadings - stored),
      samples,
    };
    log(`  => outbox ${fmt(peakDepth)} readings waiting: RSS ${r.rssAtStartMB} -> ${r.rssAtPeakDepthMB} MB (${r.rssPer100kWaitingMB ?? '-'} MB per 100k waiting); drained in ${r.drainSeconds ?? '>120'} s after InfluxDB came back (${fmt(r.catchUpReadingsPerSec)} readings/s incl. restart); loss ${r.loss}`);
    return r;
  } finally {
    for (const w of load.workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    if (!influx.pid()) await influx.resume().catch(() => undefined);
    await gw.stop();
  }
}

/**
 * Reading-to-alert latency: three simulated pumps (simulators library, continuous schedule, 10
 * readings/s) learn a 60 s baseline from back-filled history, run healthy live for 15 s, then get an
 * abrupt bearing fault (vibration RMS x4, kurtosis +3, bearing temperature +15 °C) in the same
 * reading. Measured: first faulty reading published -> alert `opened` received on machines/+/alerts.
 */
async function alertLatency(influx: BenchInfluxd): Promise<Record<string, unknown>> {
  const detection = {
    windowMs: 1000,
    hopMs: 1000,
    latenessMs: 0,
    baseline: { durationMs: 120_000, minWindows: 10 },
    policy: { k: 3, n: 4 },
  };
  log(`== reading-to-alert latency: 3 pumps, 1 s windows, 120 s baseline, alert when 3 of 4 windows score above threshold`);
  const gw = await startGateway(influx, { label: 'alert', detection });
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: 'bench-alerts', reconnectPeriod: 0 });
  try {
    const alerts: { at: number; machine: string; event: string }[] = [];
    client.on('message', (topic, payload) => {
      try {
        const j = JSON.parse(payload.toString()) as { event: string; alert: { machine: string } };
        alerts.push({ at: Date.now(), machine: j.alert.machine, event: j.event });
      } catch {
        // not an alert transition
      }
    });
    await client.subscribeAsync('machines/+/alerts', { qos: 1 });
    const ids = ['pump-a', 'pump-b', 'pump-c'];
    const stepMs = 100;
    const startTs = Math.floor((Date.now() - 150_000) / stepMs) * stepMs;
    const fleet = createFleet({ machines: ids.map((id) => ({ id, kind: 'pump' as const, schedule: 'continuous' as const })), seed: 11, startTs, stepMs });
    // Back-fill: history up to now in batches (QoS 1).
    const pendingBatch = new Map<string, unknown[]>();
    while (fleet.nextTs <= Date.now() - 1000) {
      for (const r of fleet.step()) {
        const b = pendingBatch.get(r.machine) ?? [];
        b.push({ ts: r.ts, metrics: r.metrics });
        pendingBatch.set(r.machine, b);
        if (b.length >= 500) {
          await client.publishAsync(`machines/${r.machine}/telemetry`, JSON.stringify({ readings: b }), { qos: 1 });
          pendingBatch.set(r.machine, []);
        }
      }
    }
    for (const [m, b] of pendingBatch) if (b.length) await client.publishAsync(`machines/${m}/telemetry`, JSON.stringify({ readings: b }), { qos: 1 });
    // Live: each reading published when its timestamp comes.
    let faultAt: number | null = null;
    let faultPublishedAt: number | null = null;
    const liveStart = Date.now();
    const faultDue = liveStart + 15_000;
    const deadline = faultDue + 60_000;
    let baselineFitted = false;
    while (Date.now() < deadline) {
      const wait = fleet.nextTs - Date.now();
      if (wait > 0) await sleep(wait);
      const batch = fleet.step();
      if (faultAt === null && Date.now() >= faultDue) faultAt = batch[0]?.ts ?? Date.now();
      for (const r of batch) {
        const metrics = { ...r.metrics };
        if (faultAt !== null && r.ts >= faultAt) {
          // Abrupt bearing damage on top of the simulated healthy pump.
          if (metrics.vibration_rms_mm_s !== undefined) metrics.vibration_rms_mm_s *= 4;
          if (metrics.vibration_kurtosis !== undefined) metrics.vibration_kurtosis += 3;
          if (metrics.bearing_temp_c !== undefined) metrics.bearing_temp_c += 15;
        }
        client.publish(`machines/${r.machine}/telemetry`, JSON.stringify({ ts: r.ts, metrics }), { qos: 1 });
      }
      if (faultAt !== null && faultPublishedAt === null) faultPublishedAt = Date.now();
      if (!baselineFitted && Date.now() > liveStart + 5000) {
        const res = await fetch(`${gw.httpUrl}/api/v1/machines/${ids[0]}/baseline`).catch(() => null);
        baselineFitted = ((await res?.json().catch(() => null)) as { phase?: string } | null)?.phase === 'scoring';
      }
      if (faultPublishedAt !== null && ids.every((id) => alerts.some((a) => a.machine === id && a.event !== 'resolved' && a.at >= (faultPublishedAt as number)))) break;
    }
    const before = faultPublishedAt === null ? alerts : alerts.filter((a) => a.at < (faultPublishedAt as number) && a.event === 'opened');
    const lat = ids.map((id) => {
      // An alert opened by the fault, or (if a false alert was already open) its first update after the fault.
      const a = alerts.find((x) => x.machine === id && x.event !== 'resolved' && faultPublishedAt !== null && x.at >= faultPublishedAt);
      return a && faultPublishedAt !== null ? a.at - faultPublishedAt : null;
    });
    const inference = await modelsInfo(gw);
    const r = {
      config: detection,
      baselineFittedBeforeFault: baselineFitted,
      falseAlertsBeforeFault: before.length,
      latencyMs: lat,
      medianMs: quantile(lat.filter((x): x is number => x !== null), 0.5),
      inference,
    };
    log(`  => reading-to-alert latency ${lat.map((x) => (x === null ? 'none' : `${x} ms`)).join(', ')}; alerts before the fault: ${before.length}; inference ${inference?.meanLatencyMs ?? '-'} ms/batch`);
    return r;
  } finally {
    await client.endAsync().catch(() => undefined);
    await gw.stop();
  }
}

async function profile(
  influx: BenchInfluxd,
  rate: number,
  n: number,
): Promise<{ rate: number; machines: number; file: string; window: string; step: StepResult | null; summary: ProfileSummary; text: string } | null> {
  const batch = Math.max(1, Number(argv['profile-batch']));
  log(`== profile: node --cpu-prof, ${n} machines, QoS 1 ${batch === 1 ? 'single readings' : `batches of ${batch}`} at ${fmt(rate)} readings/s for ${P.profileS} s`);
  const dir = mkdtempSync(join(tmpdir(), 'smartops-bench-prof-'));
  const gw = await startGateway(influx, { label: 'profile', cpuProfDir: dir });
  const load = await startLoad(gw.mqttPort, n, 1, batch);
  // Only the samples of the loaded window count (the profile covers the whole process lifetime).
  let loadFrom = 0;
  let loadTo = 0;
  let step: StepResult | null = null;
  try {
    await warmUp(gw, load);
    // bench/src/alloc-sampler.mjs (given with --node-flags="--import ...") restarts its allocation
    // sampling on SIGUSR2, so its profile covers the loaded step; without it SIGUSR2 would kill node.
    if (argv['node-flags']?.includes('alloc-sampler')) process.kill(gw.pid, 'SIGUSR2');
    loadFrom = Date.now() + P.rampS * 1000;
    step = await runStep(gw, influx, load, rate, P.profileS, false);
    loadTo = Date.now();
    await load.stop();
    await waitDrained(gw, null, 30_000);
  } finally {
    for (const w of load.workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await gw.stop();
  }
  const exitedAt = Date.now();
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const f = files.map((x) => join(dir, x)).sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (!f) {
    log('  no .cpuprofile written (did the gateway exit cleanly?)');
    return null;
  }
  const summary = summariseFile(f, 30, loadTo > loadFrom ? { fromEndMs: exitedAt - loadFrom, toEndMs: exitedAt - loadTo } : undefined);
  const text = formatSummary(summary);
  log(`\n${text}`);
  return { rate, machines: n, file: f, window: 'the loaded step only (after its ramp)', step, summary, text };
}

// ------------------------------------------------------------------------------------------- main
async function main(): Promise<void> {
  const started = Date.now();
  const host = hostFacts(ROOT);
  log(`smartops-gateway benchmark (${QUICK ? 'quick' : 'full'}): phases ${phases.join(', ')}`);
  log(`host: ${JSON.stringify(host)}`);
  const result: Record<string, unknown> = {
    mode: QUICK ? 'quick' : 'full',
    startedAt: new Date(started).toISOString(),
    command: `npx tsx bench/src/bench.ts ${process.argv.slice(2).join(' ')}`.trim(),
    host,
    influxd: influxdVersion(),
    headlineMachines: HEADLINE_MACHINES,
    batchSize: BATCH,
    loadWorkers: WORKERS,
    gatewayOverrides: argv.set ?? [],
    gatewayNodeFlags: argv['node-flags'] ?? null,
    params: P,
  };
  const gwCmd = phases.some((p) => !['influx', 'mosquitto'].includes(p)) ? gatewayCommand() : null;
  result.gateway = gwCmd?.describe ?? null;
  const influx = await startInfluxdServer({ quiet: true });
  cleanups.push(() => influx.stop());
  const scenarios: Record<string, ScenarioResult> = {};
  try {
    if (phases.includes('influx')) result.influxCeiling = await influxCeiling(influx);
    if (phases.includes('mosquitto')) result.mosquitto = await mosquittoReference();
    if (phases.includes('qos1-single')) scenarios['qos1-single'] = await scenario(influx, 'qos1-single', HEADLINE_MACHINES, 1, 1, QUICK ? 4000 : 3000);
    if (phases.includes('qos1-batch')) scenarios['qos1-batch'] = await scenario(influx, 'qos1-batch', HEADLINE_MACHINES, 1, BATCH, QUICK ? 10_000 : 8000);
    if (phases.includes('qos0-single')) scenarios['qos0-single'] = await scenario(influx, 'qos0-single', HEADLINE_MACHINES, 0, 1, QUICK ? 4000 : 3000, { confirm: !QUICK });
    if (phases.includes('qos0-batch')) scenarios['qos0-batch'] = await scenario(influx, 'qos0-batch', HEADLINE_MACHINES, 0, BATCH, QUICK ? 10_000 : 8000, { confirm: !QUICK });
    result.scenarios = scenarios;
    const headline = scenarios['qos1-single']?.sustainedMax ?? null;
    if (phases.includes('scaling')) result.scaling = await scaling(influx, headline);
    if (phases.includes('outbox')) result.outbox = await outboxGrowth(influx, Math.round(Math.max(2000, (headline ?? 8000) * 0.5)));
    if (phases.includes('alert')) result.alert = await alertLatency(influx);
    if (phases.includes('profile')) result.profile = await profile(influx, argv['profile-rate'] ? Number(argv['profile-rate']) : Math.round(headline ?? 8000), HEADLINE_MACHINES);
  } finally {
    result.finishedAt = new Date().toISOString();
    result.durationMin = round((Date.now() - started) / 60_000, 1);
    result.loadAverageAtEnd = loadAverage();
    const outFile = argv.out ?? join(ROOT, 'bench/results', `bench-${new Date(started).toISOString().replace(/[:.]/g, '-')}-${QUICK ? 'quick' : 'full'}.json`);
    mkdirSync(dirname(outFile), { recursive: true });
    writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
    log(`results written to ${outFile}`);
    await cleanupAll();
  }
  printSummary(result, scenarios);
}

function printSummary(result: Record<string, unknown>, sc: Record<string, ScenarioResult>): void {
  const ic = result.influxCeiling as { concurrency: number; pointsPerSec: number }[] | undefined;
  const influxBest = ic ? Math.max(...ic.map((x) => x.pointsPerSec)) : null;
  const mq = result.mosquitto as { subscriberReceivedPerSec?: number } | null | undefined;
  const lines: string[] = ['', '================ summary ================'];
  if (influxBest) lines.push(`InfluxDB raw line protocol ceiling: ${fmt(influxBest)} points/s`);
  if (mq?.subscriberReceivedPerSec) lines.push(`Mosquitto alone, QoS 1 publishers -> subscriber: ${fmt(mq.subscriberReceivedPerSec)} msg/s`);
  for (const s of Object.values(sc)) {
    const ratios = [
      mq?.subscriberReceivedPerSec && s.sustainedMax ? `${(s.sustainedMax / mq.subscriberReceivedPerSec).toFixed(2)}x Mosquitto` : null,
      influxBest && s.sustainedMax ? `${(s.sustainedMax / influxBest).toFixed(2)}x InfluxDB` : null,
    ].filter(Boolean);
    lines.push(
      `${s.name.padEnd(12)} ${fmt(s.sustainedMax).padStart(8)} readings/s sustained (${ratios.join(', ')}); loss ${s.loss}; p50/p99 publish->stored at half: ${s.atHalf?.latP50Ms ?? '-'}/${s.atHalf?.latP99Ms ?? '-'} ms; RSS peak ${s.gatewayRssPeakMB} MB`,
    );
  }
  const scal = result.scaling as { machines: number; sustainedMax: number | null; rssPeakMB: number | null; rssAfterWarmUpMB: number | null }[] | undefined;
  for (const s of scal ?? []) lines.push(`scaling ${String(s.machines).padStart(5)} machines: ${fmt(s.sustainedMax).padStart(8)} readings/s, RSS after warm-up ${s.rssAfterWarmUpMB} MB, peak ${s.rssPeakMB} MB`);
  const al = result.alert as { latencyMs: (number | null)[] } | undefined;
  if (al) lines.push(`reading-to-alert: ${al.latencyMs.map((x) => (x === null ? 'none' : `${x} ms`)).join(', ')}`);
  lines.push(`took ${result.durationMin} min`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  await cleanupAll();
  process.exit(1);
});
