/**
 * `npm run eval`: detection quality through the same code path the gateway uses (createDetection).
 *
 * Simulator mode (default): for each seed, one fleet holding, per machine kind, one healthy machine and
 * one machine per applicable fault type (onset after the baseline, the fault type's default
 * onset-to-failure duration). Prints per fault type the detection rate and lead time (share of the
 * fault's course still ahead at the first alert notification, below, on the fault's clock: running time
 * for wear and process faults, the simulator's default since 2026-12-02, `--fault-clock calendar` for the
 * earlier rounds' calendar time) and false alerts per machine-week
 * (anomalies opened on healthy machines, and on faulty machines before onset).
 * `--jobs N` splits the seeds over N child processes (one per core) and pools their runs into one summary.
 * Conditions also go through the gateway's alert engine (createAlerts, as main.ts wires it), so a
 * detection is the first alert notification a user gets during the fault: an alert opened, or an
 * alert already open escalating or newly led by another channel (the updates the engine publishes
 * at once, alerts/lifecycle.ts). The "opened only" columns count new alerts alone (earlier rounds).
 *
 * CSV mode (`--csv-dir DIR --label-column anomaly --exclude changepoint`): SKAB protocol. Each file is
 * one machine; its first 400 rows are the baseline, the rest is scored; a row is predicted anomalous
 * while the anomaly condition is open at its time. Point-wise precision, recall, F1, FAR, MAR over all
 * test parts together (FAR = FP/(FP+TN)*100, MAR = FN/(FN+TP)*100).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Registry } from 'prom-client';
import { alertsConfigSchema, createAlerts, type AlertTransition } from '../../gateway/src/alerts/index.js';
import type { ConditionEvent, WindowScore } from '../../gateway/src/contract/detection.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { createDetection, type DetectionConfig } from '../../gateway/src/detect/index.js';
import { evaluateCsvDir, scoresOf, type Confusion, type CsvEvalOptions } from './csv-eval.js';
import { configFrom, median, track, type Opened } from './eval-common.js';
import { createFleet, FAULT_CLOCKS, FAULTS, faultsForKind, MACHINE_KINDS, type FaultClock, type FaultRequest, type FaultType, type MachineKind, type MachineSpec } from '../../simulators/src/index.js';

const H = 3_600_000;
const DAY = 24 * H;
const WEEK = 7 * DAY;

/** An alert transition as a user receives it, at the event time of the window that caused it. */
interface Notice {
  raisedAt: number;
  how: 'opened' | 'severity' | 'contributors';
  text: string;
}

/**
 * Feed the detection's conditions to the gateway's alert engine and keep, per machine, the
 * transitions it publishes at once (opened; updated because the severity rose or a channel the alert
 * did not name leads it now). Throttled peak updates are not counted: they say "still open, higher".
 */
async function notifications(det: Awaited<ReturnType<typeof createDetection>>, dir: string, logger: pino.Logger): Promise<{ notices: Map<string, Notice[]>; opened: () => number; close: () => Promise<void> }> {
  let simNow = 0;
  const lastEnd = new Map<string, number>();
  det.on('score', (s: WindowScore) => {
    lastEnd.set(s.machine, s.windowEnd);
    if (s.windowEnd > simNow) simNow = s.windowEnd;
  });
  const alerts = await createAlerts(alertsConfigSchema.parse({ silenceAfterMs: 0 }), { dataDir: dir, logger, registry: new Registry(), kindOf: () => undefined, now: () => simNow });
  const notices = new Map<string, Notice[]>();
  let opened = 0;
  alerts.subscribe((t: AlertTransition) => {
    const how = t.event === 'opened' ? 'opened' : t.event === 'updated' && (t.reason === 'severity' || t.reason === 'contributors') ? t.reason : undefined;
    if (!how) return;
    if (how === 'opened') opened++;
    const list = notices.get(t.alert.machine) ?? [];
    list.push({ raisedAt: lastEnd.get(t.alert.machine) ?? t.at, how, text: `${t.alert.severity}: ${t.alert.contributorsText}` });
    notices.set(t.alert.machine, list);
  });
  det.on('condition', (e: ConditionEvent) => alerts.onCondition(e));
  return { notices, opened: () => opened, close: () => alerts.close() };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(0)}%`;
}

interface TraceSpan {
  first: number;
  last: number;
}

interface FaultRun {
  seed: number;
  kind: MachineKind;
  fault: FaultType;
  machine: string;
  onsetTs: number;
  failureTs: number;
  firstAlert: Opened | undefined;
  falseBefore: number;
  /** Those alerts (time and message), for --verbose. */
  beforeTexts: string[];
  scoredBeforeMs: number;
  /** First alert after onset that names one of the fault's channels (label.metrics) among its contributors. */
  attributed: Opened | undefined;
  /** False when the faulty machine's readings equal its fault-free twin's from onset to failure. */
  observable: boolean;
  /** Missed runs: the first and last event times at which the readings differed from the fault-free twin's
   * (onset to failure when detected; undefined when they never differed). */
  trace: TraceSpan | undefined;
  /** First alert notification during the fault: opened, or an open alert's immediate update (see notifications). */
  notified: Notice | undefined;
  /** Immediate updates (not opens) of alerts on this machine before onset. */
  updatesBefore: number;
  /** The fault's progress at an event time (0 at onset, 1 at failure), on the clock the simulator ran it by. */
  progressAt: (ts: number) => number;
}

/**
 * --deadband: the machines report by exception (as Sparkplug and many PLC gateways do): a metric is sent
 * only when it moved by at least `fraction` of its last sent value since it was last sent, and a reading
 * with no such metric is not sent. Observability and labels still come from the full readings.
 */
function reportByException(fraction: number): (readings: Reading[]) => Reading[] {
  const sent = new Map<string, Map<string, number>>();
  return (readings) => {
    const out: Reading[] = [];
    for (const r of readings) {
      let last = sent.get(r.machine);
      if (!last) sent.set(r.machine, (last = new Map()));
      const metrics: Record<string, number> = {};
      let any = false;
      for (const [k, v] of Object.entries(r.metrics)) {
        const prev = last.get(k);
        if (prev !== undefined && Math.abs(v - prev) < fraction * Math.max(Math.abs(prev), 1e-6)) continue;
        last.set(k, v);
        metrics[k] = v;
        any = true;
      }
      if (any) out.push({ ...r, metrics });
    }
    return out;
  };
}

/**
 * Does the fault change anything a detector could see before failure? A sensor stuck at 0 while its
 * machine is stopped for the whole onset-to-failure interval, or (with `--fault-clock calendar`) a wear
 * fault progressing over a weekend stop, gives exactly the readings the healthy machine gives: no method
 * can detect it. Replays the machine alone with and without the fault (the
 * simulator makes a machine independent of the rest of its fleet and of its faults until onset).
 * Returns the first and last event times before failure at which the readings differ (undefined: none
 * differ), so a missed run can say when its fault could be seen: only late (a sensor frozen at 0 while its
 * machine stood still, until the machine started minutes before failure) or only early (on the calendar
 * clock, a machine stopped for the weekend before the fault grew past its early stage).
 */
function traceSpan(seed: number, startTs: number, stepMs: number, faultClock: FaultClock, spec: MachineSpec, fault: FaultRequest, onsetTs: number, failureTs: number): TraceSpan | undefined {
  const a = createFleet({ machines: [spec], seed, startTs, stepMs, faultClock, faults: [fault] });
  const b = createFleet({ machines: [spec], seed, startTs, stepMs, faultClock });
  let span: TraceSpan | undefined;
  while (a.nextTs <= failureTs) {
    const ra = a.step()[0];
    const rb = b.step()[0];
    if (!ra || !rb || ra.ts < onsetTs) continue;
    if (JSON.stringify(ra.metrics) !== JSON.stringify(rb.metrics)) span = { first: span?.first ?? ra.ts, last: ra.ts };
  }
  return span;
}

async function simEval(o: SimOptions): Promise<void> {
  const cfg = configFrom(o.sets);
  const logger = pino({ level: 'warn' });
  const runs: FaultRun[] = [];
  const healthy: HealthyRecord[] = [];
  const t0 = Date.now();
  for (let seed = o.firstSeed; seed < o.firstSeed + o.seeds; seed++) {
    // Each seed starts on a different weekday and hour, so baselines begin in different operating states.
    const startTs = Date.parse(o.startIso) + (seed - 1) * (DAY + 5 * H);
    const specs: MachineSpec[] = [];
    const faults: FaultRequest[] = [];
    const baselineEnd = startTs + cfg.baseline.durationMs + cfg.windowMs;
    for (const kind of MACHINE_KINDS) {
      specs.push({ id: `${kind}-healthy`, kind });
      for (const fault of faultsForKind(kind)) {
        // --faults: only those runs (a machine's readings do not depend on the rest of the fleet).
        if (o.faults && !o.faults.includes(fault)) continue;
        const id = `${kind}-${fault}`;
        specs.push({ id, kind });
        // Onset somewhere in the day after the baseline (seeded, differs per run).
        const jitter = ((seed * 7919 + id.length * 104729) % 997) / 997;
        faults.push({ machine: id, fault, onsetTs: baselineEnd + 2 * H + Math.floor(jitter * 22 * H) });
      }
    }
    const fleet = createFleet({ machines: specs, seed, startTs, stepMs: o.stepMs, faults, faultClock: o.faultClock });
    const endTs = Math.max(startTs + cfg.baseline.durationMs + o.days * DAY, ...fleet.labels.map((l) => l.failureTs + H));
    const dir = mkdtempSync(join(tmpdir(), 'smartops-eval-'));
    const det = await createDetection(cfg, { dataDir: dir, logger, manualFlush: true });
    const tr = track(det);
    const alerting = await notifications(det, dir, logger);
    const failureOf = new Map(fleet.labels.map((l) => [l.machine, l.failureTs]));
    const flushEvery = Math.max(1, Math.round((10 * 60_000) / o.stepMs));
    let steps = 0;
    const rbe = o.deadband > 0 ? reportByException(o.deadband) : null;
    let offered = 0;
    let sent = 0;
    while (fleet.nextTs < endTs) {
      const batch = fleet.step() as Reading[];
      // After failure a machine is tripped; stop feeding it (nothing more to learn from it here).
      const live = batch.filter((r) => r.ts <= (failureOf.get(r.machine) ?? Infinity));
      const out = rbe ? rbe(live) : live;
      for (const r of live) offered += Object.keys(r.metrics).length;
      for (const r of out) sent += Object.keys(r.metrics).length;
      det.push(out);
      if (++steps % flushEvery === 0) await det.flush();
    }
    await det.flush();
    for (const [li, l] of fleet.labels.entries()) {
      const opens = tr.opens.get(l.machine) ?? [];
      const before = opens.filter((a) => a.raisedAt < l.onsetTs);
      const first = opens.find((a) => a.raisedAt >= l.onsetTs && a.raisedAt <= l.failureTs);
      const from = tr.scoringFrom.get(l.machine) ?? l.onsetTs;
      const spec = specs.find((sp) => sp.id === l.machine) as MachineSpec;
      const req = faults.find((f) => f.machine === l.machine) as FaultRequest;
      // A detected fault was observable; otherwise replay (a sensor stuck at 0 while its machine is stopped,
      // or a wear fault whose whole onset-to-failure interval falls on a weekend stop, leaves no trace).
      const notified = (alerting.notices.get(l.machine) ?? []).find((n) => n.raisedAt >= l.onsetTs && n.raisedAt <= l.failureTs);
      const trace = first !== undefined || notified !== undefined ? { first: l.onsetTs, last: l.failureTs } : traceSpan(seed, startTs, o.stepMs, o.faultClock, spec, req, l.onsetTs, l.failureTs);
      const obs = trace !== undefined;
      // An alert during the fault for another reason (a weekend stop) is not a detection of the fault.
      // Alerts are followed as events (open and updates) so an open alert that later names the channel counts then.
      const attributed = (tr.events.get(l.machine) ?? []).find((a) => a.raisedAt >= l.onsetTs && a.raisedAt <= l.failureTs && a.event.contributors.some((c) => l.metrics.includes(c.metric)));
      runs.push({ seed, kind: l.kind, fault: l.fault, machine: l.machine, onsetTs: l.onsetTs, failureTs: l.failureTs, firstAlert: first, attributed, notified, updatesBefore: (alerting.notices.get(l.machine) ?? []).filter((n) => n.how !== 'opened' && n.raisedAt < l.onsetTs).length, falseBefore: before.length, beforeTexts: before.map((a) => `${new Date(a.raisedAt).toISOString()} (${((a.raisedAt - from) / H).toFixed(1)} h after scoring began) ${a.event.message}`), scoredBeforeMs: Math.max(0, l.onsetTs - from), observable: obs, trace, progressAt: (ts) => fleet.progress(li, ts) });
    }
    for (const kind of MACHINE_KINDS) {
      const id = `${kind}-healthy`;
      const from = tr.scoringFrom.get(id);
      const to = tr.lastScored.get(id);
      const opens = tr.opens.get(id) ?? [];
      healthy.push({ seed, kind, alerts: opens.length, updates: (alerting.notices.get(id) ?? []).filter((n) => n.how !== 'opened').length, scoredMs: from !== undefined && to !== undefined ? to - from : 0, texts: opens.map((a) => `${new Date(a.raisedAt).toISOString()} ${a.event.message}`) });
    }
    const info = det.modelInfo();
    // Each machine's own window length (cadence.ts: longer windows for machines that report rarely).
    const windowLens = new Map<string, number>();
    for (const sp of specs) {
      const w = det.baseline(sp.id)?.windowMs;
      const key = w ? `${w / 1000} s` : 'not timed';
      windowLens.set(key, (windowLens.get(key) ?? 0) + 1);
    }
    await det.close();
    await alerting.close();
    // The engine opens exactly one alert per condition opened (one open alert per machine and kind).
    const condOpens = [...tr.opens.values()].reduce((a, l) => a + l.length, 0);
    if (alerting.opened() !== condOpens) console.error(`seed ${seed}: WARNING the alert engine opened ${alerting.opened()} alerts for ${condOpens} conditions`);
    rmSync(dir, { recursive: true, force: true });
    console.error(`seed ${seed}: ${specs.length} machines, ${((endTs - startTs) / DAY).toFixed(1)} days simulated, ${info.inferenceRuns} onnx runs (mean ${info.meanLatencyMs.toFixed(2)} ms), windows ${[...windowLens].map(([k, n]) => `${k} x${n}`).join(', ')}${rbe ? `, report by exception: ${((100 * sent) / Math.max(1, offered)).toFixed(1)} % of values sent` : ''}, ${((Date.now() - t0) / 1000).toFixed(0)} s elapsed`);
  }
  const records = runs.map(toRecord);
  if (o.recordsOut) {
    // A --jobs child: hand the plain records to the parent, which pools and prints.
    writeFileSync(o.recordsOut, JSON.stringify({ runs: records, healthy } satisfies SeedRecords));
    return;
  }
  report(o, cfg, records, healthy);
}

/** A fault run's lead at an event time: 1 - the fault's progress then (the share of its course still ahead). */
function leadOf(r: FaultRun, at: number): number {
  // On the calendar clock this is (failure - at) / (failure - onset), the definition of earlier rounds.
  return 1 - r.progressAt(at);
}

/**
 * Progress of a missed run's last trace: '-' when its readings differ from the fault-free twin's until failure
 * (within 10 min of it: a machine reporting every minute or so has its last differing reading that far back).
 */
function traceOf(r: FaultRun): string {
  const t = r.trace?.last;
  if (t === undefined || t >= r.failureTs - 10 * 60_000) return '-';
  return r.progressAt(t).toFixed(2);
}

/**
 * A miss says when its fault could be seen: from what progress on (when not from onset), and until what
 * progress (when its machine stood still from then until failure).
 */
function missed(r: FaultRun): string {
  const toFailure = (ts: number) => (r.failureTs - ts >= H ? `${((r.failureTs - ts) / H).toFixed(1)} h` : `${((r.failureTs - ts) / 60_000).toFixed(1)} min`);
  if (!r.observable) return 'MISSED';
  const notes: string[] = [];
  const f = r.trace?.first;
  // Later than 1 % of the course after onset: worth saying (a reading or two after onset is no news).
  if (f !== undefined && r.progressAt(f) > 0.01) notes.push(`readings first differ from the fault-free machine's at progress ${r.progressAt(f).toFixed(2)}, ${toFailure(f)} before failure`);
  const u = traceOf(r);
  if (u !== '-') notes.push(`readings equal the fault-free machine's from progress ${u} of onset-to-failure on, ${toFailure(r.trace?.last ?? r.failureTs)} before failure`);
  return notes.length ? `MISSED (${notes.join('; ')})` : 'MISSED';
}

/** What the summary needs of a fault run, as plain data: runs of several processes (--jobs) pool. */
interface RunRecord {
  seed: number;
  fault: FaultType;
  observable: boolean;
  /** Lead at the first notification, at the first opened alert, at the first alert naming a fault channel; null: none. */
  lead: number | null;
  openedLead: number | null;
  namedLead: number | null;
  falseBefore: number;
  updatesBefore: number;
  scoredBeforeMs: number;
  /** Missed observable runs: traceOf. */
  lastTrace: string;
  /** The --verbose lines: alerts before onset, and the first notification. */
  beforeLines: string[];
  line: string;
}

interface HealthyRecord {
  seed: number;
  kind: MachineKind;
  alerts: number;
  updates: number;
  scoredMs: number;
  texts: string[];
}

interface SeedRecords {
  runs: RunRecord[];
  healthy: HealthyRecord[];
}

function toRecord(r: FaultRun): RunRecord {
  const n = r.notified;
  const a = r.firstAlert;
  // When the first notification is an update of an alert opened before onset, say so and give the opened-only lead too.
  const also = n && n.how !== 'opened' ? ` (update of an alert open at onset; opened only: ${a ? `lead ${leadOf(r, a.raisedAt).toFixed(2)}` : 'MISSED'})` : '';
  const lead = n ? leadOf(r, n.raisedAt) : null;
  return {
    seed: r.seed,
    fault: r.fault,
    observable: r.observable,
    lead,
    openedLead: a ? leadOf(r, a.raisedAt) : null,
    namedLead: r.attributed ? leadOf(r, r.attributed.raisedAt) : null,
    falseBefore: r.falseBefore,
    updatesBefore: r.updatesBefore,
    scoredBeforeMs: r.scoredBeforeMs,
    lastTrace: r.observable && !n ? traceOf(r) : '-',
    beforeLines: r.beforeTexts.map((t) => `    seed ${r.seed} ${r.machine}: ${t}`),
    line: `  seed ${r.seed} ${r.machine}: ${!r.observable ? 'UNOBSERVABLE (readings equal the fault-free machine\'s until failure), ' : ''}${n && lead !== null ? `lead ${lead.toFixed(2)} ${n.how}${also}: ${n.text}` : missed(r)}`,
  };
}

type SimOptions = { firstSeed: number; seeds: number; days: number; stepMs: number; sets: string[]; startIso: string; verbose: boolean; faults: FaultType[] | null; deadband: number; faultClock: FaultClock; recordsOut?: string };

/** The summary: per fault type, false alerts, the verdict (and with --verbose, every alert and run). */
function report(o: SimOptions, cfg: DetectionConfig, runs: RunRecord[], healthy: HealthyRecord[]): void {
  console.log(`\nDetection config: window ${cfg.windowMs / 1000}s hop ${cfg.hopMs / 1000}s, baseline ${cfg.baseline.durationMs / H} h, features ${cfg.baseline.features.join('+')}, threshold q${cfg.threshold.quantile} x${cfg.threshold.margin} (min ${cfg.threshold.minThreshold}), k-of-n ${cfg.policy.k}/${cfg.policy.n}; simulator step ${o.stepMs} ms, ${o.seeds} seeds, wear faults on the ${o.faultClock} clock\n`);
  console.log('Detected = share of observable runs (a run is unobservable when its readings equal the fault-free machine\'s until failure)');
  console.log('with an alert notification during the fault: an alert opened, or an alert already open escalating or newly led by');
  console.log('another channel (what the gateway publishes at once). "opened only" counts new alerts alone (earlier rounds\' definition).\n');
  console.log('"named": the first alert (or update) during the fault that names one of the fault\'s channels.\n');
  console.log(`Lead = 1 - the fault's progress at the first notification: the share of its course still ahead, on its clock (${o.faultClock === 'operating' ? 'wear and process faults: running time, so a weekend stop neither adds to nor takes from it; sensor faults: calendar' : 'calendar for every fault'}).\n`);
  console.log('"missed: last trace": per missed observable run, the progress (share of onset-to-failure) after which its readings');
  console.log('equal the fault-free machine\'s (its machine stood still until failure); "-" when they differ until failure.\n');
  console.log('| fault type | runs | unobservable | detected | median lead | min lead | opened only: detected | median lead | named | named median lead | false alerts before onset | missed: last trace |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  let allOk = true;
  const fmt = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(2));
  const leads = (rs: RunRecord[], pick: (r: RunRecord) => number | null) => rs.map(pick).filter((x): x is number => x !== null);
  for (const fault of Object.keys(FAULTS) as FaultType[]) {
    const all = runs.filter((r) => r.fault === fault);
    if (all.length === 0) continue;
    const rs = all.filter((r) => r.observable);
    const det = leads(rs, (r) => r.lead);
    const rate = det.length / rs.length;
    const med = median(det);
    const opened = leads(rs, (r) => r.openedLead);
    const named = leads(rs, (r) => r.namedLead);
    if (rate < 0.95 || !(med >= 0.5)) allOk = false;
    console.log(`| ${fault} | ${all.length} | ${all.length - rs.length} | ${pct(rate)} | ${fmt(med)} | ${det.length ? Math.min(...det).toFixed(2) : '-'} | ${pct(opened.length / rs.length)} | ${fmt(median(opened))} | ${pct(named.length / rs.length)} | ${fmt(median(named))} | ${all.reduce((a, r) => a + r.falseBefore, 0)} | ${rs.filter((r) => r.lead === null).map((r) => r.lastTrace).join(', ') || '-'} |`);
  }
  const falseUpdates = healthy.reduce((a, h) => a + h.updates, 0);
  const falseUpdatesBefore = runs.reduce((a, r) => a + r.updatesBefore, 0);
  const hAlerts = healthy.reduce((a, h) => a + h.alerts, 0);
  const hWeeks = healthy.reduce((a, h) => a + h.scoredMs, 0) / WEEK;
  const fAlerts = runs.reduce((a, r) => a + r.falseBefore, 0);
  const fWeeks = runs.reduce((a, r) => a + r.scoredBeforeMs, 0) / WEEK;
  console.log(`\nHealthy machines: ${hAlerts} alerts in ${hWeeks.toFixed(2)} machine-weeks scored = ${(hAlerts / Math.max(hWeeks, 1e-9)).toFixed(2)} per machine-week`);
  for (const kind of MACHINE_KINDS) {
    const hs = healthy.filter((h) => h.kind === kind);
    const a = hs.reduce((s, h) => s + h.alerts, 0);
    const w = hs.reduce((s, h) => s + h.scoredMs, 0) / WEEK;
    console.log(`  ${kind}: ${a} alerts in ${w.toFixed(2)} machine-weeks`);
    if (o.verbose) for (const h of hs) for (const t of h.texts) console.log(`    seed ${h.seed}: ${t}`);
  }
  console.log(`Faulty machines before onset: ${fAlerts} alerts in ${fWeeks.toFixed(2)} machine-weeks scored`);
  // Not more false alerts (the same alert), but notifications all the same: reported, not hidden.
  console.log(`Updates published at once (escalation, new leading channel) of those false alerts: ${falseUpdates} on healthy machines, ${falseUpdatesBefore} on faulty machines before onset`);
  if (o.verbose) for (const r of runs) for (const t of r.beforeLines) console.log(t);
  const far = (hAlerts + fAlerts) / Math.max(hWeeks + fWeeks, 1e-9);
  console.log(`All: ${far.toFixed(2)} false alerts per machine-week (target <= 1)`);
  if (far > 1) allOk = false;
  if (o.verbose) {
    console.log('\nFirst alert notification per fault run:');
    for (const r of runs) console.log(r.line);
  }
  console.log(`\nTargets (>= 95% detection and median lead >= 0.5 per fault type, <= 1 false alert per machine-week): ${allOk ? 'MET' : 'NOT MET'}`);
}

/**
 * --jobs N: the seeds split into N contiguous ranges, each run by a child process (this script with
 * --records-out), one per core; their records are pooled in seed order and reported exactly as one process
 * running every seed would report them (each seed has its own fleet and detection). The children's
 * progress lines go to stderr as they come.
 */
async function simEvalJobs(o: SimOptions, jobs: number, passArgs: string[]): Promise<void> {
  const n = Math.min(jobs, o.seeds);
  const dir = mkdtempSync(join(tmpdir(), 'smartops-eval-jobs-'));
  const children: ChildProcess[] = [];
  try {
    const parts: Array<{ first: number; count: number; file: string }> = [];
    let first = o.firstSeed;
    for (let j = 0; j < n; j++) {
      const count = Math.floor(o.seeds / n) + (j < o.seeds % n ? 1 : 0);
      parts.push({ first, count, file: join(dir, `seeds-${first}.json`) });
      first += count;
    }
    await Promise.all(
      parts.map(
        (p) =>
          new Promise<void>((resolve, reject) => {
            // process.execArgv carries tsx's loader (npm run eval), so the child runs this TypeScript file too.
            const args = [...process.execArgv, fileURLToPath(import.meta.url), ...passArgs, '--seeds', String(p.count), '--first-seed', String(p.first), '--records-out', p.file];
            const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
            children.push(child);
            child.on('error', reject);
            child.on('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`eval job for seeds ${p.first}-${p.first + p.count - 1} failed (${signal ?? `exit code ${code}`})`))));
          }),
      ),
    );
    const runs: RunRecord[] = [];
    const healthy: HealthyRecord[] = [];
    for (const p of parts) {
      const r = JSON.parse(readFileSync(p.file, 'utf8')) as SeedRecords;
      runs.push(...r.runs);
      healthy.push(...r.healthy);
    }
    report(o, configFrom(o.sets), runs, healthy);
  } finally {
    // One job failed: stop the others rather than leave them running for nothing.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function csvEval(o: CsvEvalOptions & { verbose: boolean }): Promise<void> {
  const res = await evaluateCsvDir(o);
  const f = (x: number): string => x.toFixed(3);
  const line = (c: Confusion): string => {
    const s = scoresOf(c);
    return `precision ${f(s.precision)}  recall ${f(s.recall)}  F1 ${f(s.f1)}  FAR ${s.far.toFixed(2)}%  MAR ${s.mar.toFixed(2)}%`;
  };
  let columns = '';
  for (const r of res.files) {
    // The columns are printed when they change, so a label used as an input (a forgotten --exclude) shows.
    const cols = `metrics ${r.metrics.join(', ')}; left out: ${r.leftOut.map((l) => `${l.column} (${l.reason})`).join(', ')}`;
    if (cols !== columns) console.log(`  ${cols}`);
    columns = cols;
    const test = r.tp + r.fp + r.fn + r.tn;
    console.log(`${r.file}: ${r.rows} rows (${r.trainRows} baseline, ${test} scored, ${r.labelled} labelled anomalous), step ${r.stepMs / 1000} s, ${r.alerts.length} alert(s)${r.skippedRows ? `, ${r.skippedRows} row(s) unreadable` : ''}: TP ${r.tp} FP ${r.fp} FN ${r.fn} TN ${r.tn}; ${line(r)}`);
    if (o.verbose) for (const a of r.alerts) console.log(`    row ${a.row}: ${a.message}${a.contributors ? ` (${a.contributors})` : ''}`);
  }
  for (const s of res.skippedFiles) console.log(`${s.file}: not scored: ${s.reason}`);
  const t = res.totals;
  console.log(`files: ${res.files.length}, test rows: ${t.tp + t.fp + t.tn + t.fn}`);
  console.log(line(t));
  if (o.label === null) console.log('(no labels: every row is normal, so only FAR is meaningful)');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string', default: '3' },
      'first-seed': { type: 'string', default: '1' },
      days: { type: 'string', default: '7' },
      'step-ms': { type: 'string', default: '1000' },
      start: { type: 'string', default: '2025-03-03T00:00:00Z' },
      set: { type: 'string', multiple: true, default: [] },
      verbose: { type: 'boolean', default: false },
      faults: { type: 'string' },
      'csv-dir': { type: 'string' },
      'label-column': { type: 'string', default: 'anomaly' },
      exclude: { type: 'string', multiple: true, default: [] },
      'no-labels': { type: 'boolean', default: false },
      'train-rows': { type: 'string', default: '400' },
      deadband: { type: 'string', default: '0' },
      'fault-clock': { type: 'string', default: 'operating' },
      jobs: { type: 'string', default: '1' },
      'records-out': { type: 'string' },
    },
  });
  const sets = values.set ?? [];
  if (values['csv-dir']) {
    await csvEval({ dir: values['csv-dir'], label: values['no-labels'] ? null : (values['label-column'] ?? 'anomaly'), exclude: (values.exclude ?? []).flatMap((e) => e.split(',')), trainRows: Number(values['train-rows']), sets, verbose: values.verbose ?? false });
    return;
  }
  const faults = values.faults ? values.faults.split(',').map((f) => f.trim()) : null;
  for (const f of faults ?? []) if (!(f in FAULTS)) throw new Error(`--faults: unknown fault type "${f}" (known: ${Object.keys(FAULTS).join(', ')})`);
  const faultClock = values['fault-clock'] as FaultClock;
  if (!FAULT_CLOCKS.includes(faultClock)) throw new Error(`--fault-clock: "${faultClock}" unknown (known: ${FAULT_CLOCKS.join(', ')})`);
  const o: SimOptions = { faultClock, faults: faults as FaultType[] | null, firstSeed: Number(values['first-seed']), seeds: Number(values.seeds), days: Number(values.days), stepMs: Number(values['step-ms']), sets, startIso: values.start ?? '2025-03-03T00:00:00Z', verbose: values.verbose ?? false, deadband: Number(values.deadband) };
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs: "${values.jobs}" is not a whole number of 1 or more`);
  if (values['records-out']) o.recordsOut = values['records-out'];
  if (jobs > 1 && o.seeds > 1 && !o.recordsOut) {
    // Everything but the seed range, as given, for each job.
    const pass = ['--days', String(values.days), '--step-ms', String(values['step-ms']), '--start', o.startIso, '--deadband', String(values.deadband), '--fault-clock', faultClock, ...sets.flatMap((x) => ['--set', x]), ...(values.faults ? ['--faults', values.faults] : [])];
    await simEvalJobs(o, jobs, pass);
    return;
  }
  await simEval(o);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
