/**
 * Detection facade: readings in, window scores and anomaly conditions out.
 *
 *   push(readings) -> per-machine event-time windows -> closed windows queue
 *   every batchIntervalMs (or flush()): learning windows feed the machine's baseline; a completed baseline
 *   is fitted and its threshold calibrated; every other window of every machine is scored in one
 *   onnxruntime run -> 'score' events, k-of-n policy -> 'condition' events.
 *
 * main.ts wires it: createDetection(config.detection, { dataDir, logger, registry }), push() from ingest,
 * on('score'|'condition') to alerts / sinks, tick() from a timer, close() on shutdown.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Reading } from '../contract/reading.js';
import type { ConditionEvent, Contributor, WindowScore } from '../contract/detection.js';
import { blockFolds, fitParams, selectFeatureKeys, vectorize, type ModelParams } from './baseline.js';
import { detectionConfigSchema, type DetectionConfig } from './config.js';
import { CadenceProbe, windowScale } from './cadence.js';
import { counterMetrics } from './counters.js';
import { HOLD_MAX_MS, HoldExpander } from './hold.js';
import { calibrateDrift, decayDrift, driftLambda, driftValue, initialDriftState, updateDrift, type DriftCalibration, type DriftState } from './drift.js';
import { DetectError } from './errors.js';
import { driftContributor, explain, recurrenceContributor } from './explain.js';
import { quantile } from './linalg.js';
import { builtinManifestPath, ScoringModel, type ModelManifest, type ScoreRequest } from './model.js';
import { calibrateThreshold, initialPolicyState, stepPolicy, type PolicyState } from './policy.js';
import { calibrateRare, rareRatio } from './rare.js';
import { calibrateRecurrence, initialRecurrenceState, recurrenceValue, updateRecurrence, type RecurrenceState } from './recurrence.js';
import { DetectionStore, type Cadence, type FittedBaseline, type MonitorState, type StoredScore } from './store.js';
import { MachineWindower, type ClosedWindow, type PushResult } from './window.js';

export { detectionConfigSchema, type DetectionConfig } from './config.js';
export { DetectError, type DetectErrorCode } from './errors.js';
export type { StoredScore } from './store.js';

export interface DetectionDeps {
  dataDir: string;
  logger: Logger;
  /** prom-client registry; metrics are registered with the prefix smartops_detect_. */
  registry?: Registry;
  /** Gateway clock (ms); default Date.now. Used only for idle window closing and score retention. */
  now?: () => number;
  /** No batching timer: windows are scored only when flush() is called (evaluation, tests). */
  manualFlush?: boolean;
}

export interface BaselineInfo {
  machine: string;
  phase: 'learning' | 'scoring';
  /** 0..1: share of the baseline period (event time) and of the minimum window count reached. */
  progress: number;
  windows: number;
  minWindows: number;
  durationMs: number;
  /** Event time of the first and last baseline window (epoch ms), null before the first window. */
  from: number | null;
  to: number | null;
  fittedAt: number | null;
  threshold: number | null;
  /** Metrics in the fitted baseline. */
  metrics: string[];
  /** Of those, the ones that only count up (parts, cycles, kWh): modelled by their rate (counters.ts). */
  counters: string[];
  /** Model features, in model input order. */
  features: string[];
  modes: number;
  /** Rare states kept from the baseline's own would-be alerts (rare.ts): windows close to one are not counted above the threshold. */
  rareStates: number;
  /** Metrics this machine sent since the baseline was fitted that the baseline does not know (re-learn to include them). */
  unlearnedMetrics: string[];
  modelVersion: string | null;
  /**
   * This machine's window length and hop (ms): detection.windowMs and hopMs times a whole multiple chosen
   * from its sampling interval (cadence.ts); null while its first readings are still being timed.
   */
  windowMs: number | null;
  hopMs: number | null;
  /** Median interval between the machine's first readings (ms); null while it is measured, or when unknown (a machine timed before this was recorded). */
  samplingIntervalMs: number | null;
  /** The machine reports by exception (readings carry only changed metrics): readings are completed with held values (hold.ts). */
  reportByException: boolean;
  /**
   * Windows since start-up (or the last reset) with fewer than minSamplesPerWindow readings: neither learnt
   * from nor scored. Many of them = the machine reports less often than its windows need (reset the baseline to time it again).
   */
  sparseWindows: number;
}

export interface MachineDetectionStatus {
  machine: string;
  phase: 'learning' | 'scoring';
  progress: number;
  lastWindowEnd: number | null;
  lastScore: number | null;
  threshold: number | null;
  anomalyOpen: boolean;
  lateReadings: number;
}

export interface ModelInfo {
  name: string;
  version: string;
  manifestPath: string;
  modelPath: string;
  manifest: ModelManifest;
  inferenceRuns: number;
  windowsScored: number;
  meanLatencyMs: number;
  lastLatencyMs: number;
}

export interface Detection {
  /** Feed validated readings (any machines, any order within the lateness bound). Never throws. */
  push(readings: readonly Reading[]): void;
  on(event: 'score', fn: (s: WindowScore) => void): this;
  on(event: 'condition', fn: (e: ConditionEvent) => void): this;
  off(event: 'score', fn: (s: WindowScore) => void): this;
  off(event: 'condition', fn: (e: ConditionEvent) => void): this;
  /** Timer hook (call every few seconds): closes windows of machines quiet for idleCloseMs, prunes history. */
  tick(now?: number): void;
  /** Score every closed window now; resolves when done (events emitted). */
  flush(): Promise<void>;
  baseline(machine: string): BaselineInfo | undefined;
  /** Forget the machine's baseline and learn it again from its next windows; clears an open anomaly. */
  resetBaseline(machine: string): BaselineInfo;
  machines(): MachineDetectionStatus[];
  modelInfo(): ModelInfo;
  /** Window scores kept in the detection store (historyDays), oldest first; the newest `limit` when more match. */
  anomalyHistory(machine: string, from: number, to: number, limit?: number): StoredScore[];
  close(): Promise<void>;
}

interface MachineState {
  id: string;
  windower: MachineWindower | null;
  /**
   * Whole multiple of the configured window and hop for this machine (cadence.ts); null until its first
   * readings have been timed, which `probe` holds back meanwhile.
   */
  scale: number | null;
  probe: CadenceProbe | null;
  intervalMs: number | null;
  /** Set for a machine that reports by exception: completes its readings with held values (hold.ts). */
  hold: HoldExpander | null;
  phase: 'learning' | 'scoring';
  /**
   * Learning progress only: the learning windows themselves are in the detection store (written as they
   * close) and read back once, at fit time, so a long baseline (a week of windows) costs no memory per
   * machine while it is being learnt.
   */
  learn: LearnSummary | null;
  baseline: FittedBaseline | null;
  policy: PolicyState;
  lastArrival: number;
  lastWindowEnd: number | null;
  lastScore: number | null;
  seenMetrics: Set<string>;
  /** EWMA of the model's residuals (drift.ts); persisted in the store's `monitors` table. */
  drift: DriftState | null;
  /** The slow EWMA of the same residuals (drift.slowTimeConstantMs); persisted with the fast one. */
  driftSlow: DriftState | null;
  /** Slots of the last horizon with a far-out window, and recent levels, per feature (recurrence.ts); persisted with the drift. */
  recur: RecurrenceState | null;
  /** Event time of the last window folded into the running statistics (null: none yet). */
  monitorEnd: number | null;
  /** Event time of the running statistics last written to the store; -Infinity = never. */
  monitorSavedEnd: number;
}

interface LearnSummary {
  /** Learning windows so far, start of the first and end of the newest (event time, ms). */
  n: number;
  first: number;
  last: number;
}

interface Pending {
  machine: string;
  window: ClosedWindow;
}

const MAX_FITS_PER_FLUSH = 4;
/** Longest window a machine's cadence can give it (the largest detection.windowMs allowed). */
const MAX_WINDOW_MS = 3_600_000;
/**
 * Running statistics are written with the scoring transaction at most once per this much event time per
 * machine (and on close): a crash loses at most these few minutes of a 30 min average, and the store
 * does not get a second row per window beside the score.
 */
const MONITOR_SAVE_EVERY_MS = 5 * 60_000;

class DetectionImpl extends EventEmitter implements Detection {
  private readonly machinesById = new Map<string, MachineState>();
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private closed = false;
  private lastPrune = 0;
  private readonly m: ReturnType<typeof createMetrics>;
  private readonly now: () => number;
  // Per reading: one closure and one labelled counter child bound once, not built per call (bench/README "Allocations").
  private readonly emitWindow = (w: ClosedWindow): void => this.enqueue(w);
  private readonly readingsBy: Record<PushResult, { inc(n?: number): void }>;

  constructor(
    private readonly cfg: DetectionConfig,
    private readonly deps: DetectionDeps,
    private readonly model: ScoringModel,
    private readonly store: DetectionStore,
  ) {
    super();
    this.now = deps.now ?? Date.now;
    this.m = createMetrics(deps.registry, this);
    this.readingsBy = { accepted: this.m.readings.labels('accepted'), late: this.m.readings.labels('late') };
    this.restore();
  }

  private restore(): void {
    const { valid, invalid } = this.store.baselines();
    for (const machine of invalid) {
      this.deps.logger.warn({ machine }, 'stored baseline unreadable; the machine re-learns its baseline');
      this.store.deleteBaseline(machine);
    }
    const conditions = this.store.conditions();
    const monitors = this.store.monitors();
    for (const b of valid) {
      if (b.modelName !== this.model.manifest.name || !this.compatible(b.params)) {
        this.deps.logger.warn({ machine: b.machine, model: b.modelName }, 'stored baseline was fitted for another model; the machine re-learns its baseline');
        this.store.deleteBaseline(b.machine);
        continue;
      }
      if (this.cfg.drift.enabled && this.model.hasResiduals && !b.drift) {
        this.deps.logger.info({ machine: b.machine }, 'stored baseline predates the drift statistic: drift stays off for this machine until its baseline is re-learnt');
      }
      const st = this.state(b.machine);
      st.phase = 'scoring';
      st.baseline = b;
      st.scale = b.windowScale ?? 1;
      st.intervalMs = b.samplingIntervalMs ?? null;
      st.policy = conditions.get(b.machine) ?? initialPolicyState();
      const mon = monitors.get(b.machine);
      if (mon) {
        // Only a state of this very baseline's features continues; anything else starts from 0.
        if (mon.drift && b.drift && mon.drift.length === b.drift.sigma.length) st.drift = { e: Float64Array.from(mon.drift) };
        if (mon.driftSlow && b.driftSlow && mon.driftSlow.length === b.driftSlow.sigma.length) st.driftSlow = { e: Float64Array.from(mon.driftSlow) };
        st.recur = restoreRecurrence(mon.recurrence, b.recurrence?.p.length ?? 0);
        st.monitorEnd = mon.end;
        st.monitorSavedEnd = mon.end;
      }
    }
    for (const machine of monitors.keys()) {
      if (this.machinesById.get(machine)?.phase !== 'scoring') this.store.deleteMonitor(machine);
    }
    for (const s of this.store.learningSummary()) {
      const st = this.state(s.machine);
      if (st.phase === 'scoring') {
        this.store.clearLearning(s.machine);
        continue;
      }
      st.learn = { n: s.n, first: s.first, last: s.last };
      // The learning windows' own length says which scale they were cut at.
      st.scale = Math.max(1, Math.round(s.span / this.cfg.windowMs));
    }
    // How each machine was timed, kept since (the baseline's and learning's own record above is the
    // fallback for a store written before this table existed).
    for (const [machine, c] of this.store.cadences()) this.applyCadence(this.state(machine), c);
  }

  private applyCadence(st: MachineState, c: Cadence): void {
    st.scale = c.scale;
    st.intervalMs = c.intervalMs;
    st.hold = c.hold ? new HoldExpander(this.holdStepMs()) : null;
  }

  /** Held readings every this often: a window then holds targetSamplesPerWindow of them (10 s by default). */
  private holdStepMs(): number {
    return Math.max(1, Math.floor(this.cfg.windowMs / Math.max(1, this.cfg.targetSamplesPerWindow, this.cfg.minSamplesPerWindow)));
  }

  private compatible(p: ModelParams): boolean {
    const man = this.model.manifest;
    if (man.layout === 'fixed') return JSON.stringify(p.featureKeys) === JSON.stringify(man.featureOrder);
    return true;
  }

  private state(machine: string): MachineState {
    let st = this.machinesById.get(machine);
    if (!st) {
      st = {
        id: machine,
        windower: null,
        scale: this.probes() ? null : 1,
        probe: null,
        intervalMs: null,
        hold: null,
        phase: 'learning',
        learn: null,
        baseline: null,
        policy: initialPolicyState(),
        lastArrival: 0,
        lastWindowEnd: null,
        lastScore: null,
        seenMetrics: new Set(),
        drift: null,
        driftSlow: null,
        recur: null,
        monitorEnd: null,
        monitorSavedEnd: -Infinity,
      };
      this.machinesById.set(machine, st);
    }
    return st;
  }

  push(readings: readonly Reading[]): void {
    if (this.closed || !this.cfg.enabled) return;
    const arrival = this.now();
    // Counted once per call, not per reading: a labelled prom-client inc hashes its labels each time (1.7 % of the loop with batches).
    let accepted = 0;
    let late = 0;
    for (const r of readings) {
      let st = this.machinesById.get(r.machine);
      if (!st) {
        if (this.machinesById.size >= this.cfg.maxMachines) {
          this.m.readings.inc({ result: 'untracked' });
          continue;
        }
        st = this.state(r.machine);
      }
      st.lastArrival = arrival;
      if (st.windower || st.scale !== null) {
        if (this.feed(st, st.windower ?? this.startWindows(st), r) === 'accepted') accepted++;
        else late++;
      } else {
        // Cadence still unknown: hold the reading (bounded by PROBE_MAX_READINGS) until it is.
        const probe = (st.probe ??= new CadenceProbe());
        probe.add(r);
        if (probe.ready) this.endProbe(st);
      }
    }
    if (accepted > 0) this.readingsBy.accepted.inc(accepted);
    if (late > 0) this.readingsBy.late.inc(late);
    this.schedule();
  }

  /** One reading into the machine's windows; the caller counts the result. */
  private feed(st: MachineState, windower: MachineWindower, r: Reading): PushResult {
    const sparse0 = windower.sparseWindows;
    let res: PushResult;
    if (st.hold) {
      // The completed reading is the last one emitted; filled ones before it are not readings and not counted.
      let last = 'accepted' as PushResult;
      st.hold.expand(r.ts, r.metrics, (ts, m) => {
        last = windower.push(ts, m, this.emitWindow);
      });
      res = last;
    } else res = windower.push(r.ts, r.metrics, this.emitWindow);
    if (windower.sparseWindows !== sparse0) this.m.windows.inc({ result: 'sparse' }, windower.sparseWindows - sparse0);
    if (st.phase === 'scoring') for (const k in r.metrics) st.seenMetrics.add(k);
    return res;
  }

  private startWindows(st: MachineState): MachineWindower {
    const w = new MachineWindower(st.id, {
      windowMs: this.windowOf(st),
      hopMs: this.hopOf(st),
      latenessMs: this.cfg.latenessMs,
      minSamples: this.cfg.minSamplesPerWindow,
    });
    st.windower = w;
    return w;
  }

  /** Choose the machine's scale from its held readings, then window them in arrival order. */
  private endProbe(st: MachineState): void {
    const probe = st.probe;
    st.probe = null;
    const intervalMs = probe ? probe.interval() : null;
    // Report by exception: completed readings every holdStepMs fill every window, so no longer windows.
    const hold = this.cfg.holdValues && probe !== null && probe.partial();
    const scale = hold ? 1 : windowScale(intervalMs, {
      windowMs: this.cfg.windowMs,
      hopMs: this.cfg.hopMs,
      targetSamples: this.cfg.targetSamplesPerWindow,
      maxWindowMs: MAX_WINDOW_MS,
      baselineMs: this.cfg.baseline.durationMs,
      minWindows: this.cfg.baseline.minWindows,
    });
    this.applyCadence(st, { scale, intervalMs, hold });
    this.store.putCadence(st.id, { scale, intervalMs, hold });
    if (hold) this.deps.logger.info({ machine: st.id }, 'machine reports by exception (each reading carries only some metrics): readings are completed with the last value of the others');
    if (st.scale !== null && st.scale > 1) {
      this.deps.logger.info(
        { machine: st.id, samplingIntervalMs: st.intervalMs, windowMs: this.windowOf(st), hopMs: this.hopOf(st) },
        'machine reports less often than detection.windowMs suits: its windows are longer',
      );
    }
    const w = this.startWindows(st);
    for (const r of probe?.held ?? []) this.readingsBy[this.feed(st, w, r)].inc();
  }

  /** A new machine's first readings are held and timed unless both uses of that are off. */
  private probes(): boolean {
    return this.cfg.targetSamplesPerWindow > 0 || this.cfg.holdValues;
  }

  private hopOf(st: MachineState): number {
    return this.cfg.hopMs * (st.scale ?? 1);
  }

  private windowOf(st: MachineState): number {
    return this.cfg.windowMs * (st.scale ?? 1);
  }

  private enqueue(w: ClosedWindow): void {
    this.pending.push({ machine: w.machine, window: w });
    if (this.pending.length > this.cfg.model.maxPendingWindows) {
      const drop = this.pending.length - this.cfg.model.maxPendingWindows;
      this.pending.splice(0, drop);
      this.m.windows.inc({ result: 'dropped' }, drop);
      this.deps.logger.warn({ dropped: drop }, 'detection cannot keep up: oldest closed windows dropped from scoring');
    }
  }

  private schedule(): void {
    if (this.deps.manualFlush || this.timer || this.pending.length === 0 || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush().catch((e: unknown) => this.deps.logger.error({ err: e }, 'detection flush failed'));
    }, this.cfg.model.batchIntervalMs);
    this.timer.unref();
  }

  tick(now = this.now()): void {
    if (this.closed) return;
    const emit = (w: ClosedWindow) => this.enqueue(w);
    for (const st of this.machinesById.values()) {
      // A machine that went quiet while its cadence was timed: window what it sent (scale from what is known).
      if (st.probe && now - st.lastArrival >= this.cfg.idleCloseMs) this.endProbe(st);
      // Longer windows wait longer: a machine reporting every few minutes is not idle between two readings,
      // nor one reporting by exception while nothing changes (its next reading fills the gap, hold.ts).
      const idle = st.hold ? Math.max(this.cfg.idleCloseMs, HOLD_MAX_MS + this.cfg.windowMs) : this.cfg.idleCloseMs * (st.scale ?? 1);
      if (st.windower && st.windower.openWindows > 0 && now - st.lastArrival >= idle) {
        const sparse0 = st.windower.sparseWindows;
        st.windower.closeAll(emit);
        if (st.windower.sparseWindows !== sparse0) this.m.windows.inc({ result: 'sparse' }, st.windower.sparseWindows - sparse0);
      }
    }
    if (this.cfg.historyDays > 0 && now - this.lastPrune > 3_600_000) {
      this.lastPrune = now;
      this.store.pruneScores(now - this.cfg.historyDays * 86_400_000);
    }
    this.schedule();
  }

  flush(): Promise<void> {
    // Serialise: one batch in flight; a flush requested meanwhile runs right after it.
    const run = async (): Promise<void> => {
      while (this.pending.length > 0 && !this.closed) await this.processBatch();
    };
    const p = (this.flushing ?? Promise.resolve()).then(run, run);
    this.flushing = p.finally(() => {
      if (this.flushing === p) this.flushing = null;
    });
    return p;
  }

  private async processBatch(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const requeue: Pending[] = [];
    const toScore: Array<{ st: MachineState; w: ClosedWindow; x: Float64Array }> = [];
    const completed: MachineState[] = [];
    const blocked = new Set<string>();
    let fits = 0;
    this.store.transaction(() => {
      for (const p of batch) {
        const st = this.state(p.machine);
        if (blocked.has(st.id)) {
          requeue.push(p);
          continue;
        }
        const w = p.window;
        st.lastWindowEnd = w.end;
        if (st.phase === 'learning' && !completed.includes(st)) {
          if (st.learn) {
            st.learn.n++;
            st.learn.last = Math.max(st.learn.last, w.end);
          } else st.learn = { n: 1, first: w.start, last: w.end };
          this.store.putLearningWindow(st.id, w.start, w.end, w.metrics);
          this.m.windows.inc({ result: 'learning' });
          this.emitScore({ machine: st.id, windowStart: w.start, windowEnd: w.end, phase: 'learning', score: 0, threshold: null, above: false, contributors: [], modelVersion: this.model.manifest.version });
          if (this.learningDone(st)) {
            if (fits >= MAX_FITS_PER_FLUSH) {
              blocked.add(st.id);
              continue;
            }
            fits++;
            completed.push(st);
          }
          continue;
        }
        if (completed.includes(st)) {
          // Scored after its threshold is calibrated below.
          toScore.push({ st, w, x: new Float64Array(0) });
          continue;
        }
        const b = st.baseline;
        if (!b) continue;
        toScore.push({ st, w, x: vectorize(w.metrics, b.params.featureKeys) });
      }
    });
    if (requeue.length > 0) this.pending = requeue.concat(this.pending);
    for (const st of completed) await this.fit(st);
    for (const t of toScore) {
      if (t.x.length === 0 && t.st.baseline) t.x = vectorize(t.w.metrics, t.st.baseline.params.featureKeys);
    }
    const ready = toScore.filter((t) => t.st.baseline && t.st.phase === 'scoring');
    if (ready.length === 0) return;
    const reqs: ScoreRequest[] = ready.map((t) => ({ x: t.x, params: (t.st.baseline as FittedBaseline).params }));
    const t0 = performance.now();
    const results = await this.model.score(reqs);
    this.m.inferSeconds.observe((performance.now() - t0) / 1000);
    this.m.inferRuns.inc();
    const k = this.cfg.contributors;
    this.store.transaction(() => {
      ready.forEach((t, i) => {
        const r = results[i];
        const b = t.st.baseline;
        if (!r || !b) return;
        this.m.windows.inc({ result: 'scored' });
        let windowScore = Number.isFinite(r.score) ? r.score : Number.MAX_VALUE;
        // A window above the threshold that is close to one of the baseline's own rare states (rare.ts) is
        // a state this machine held while it was learnt, not a new one.
        if (windowScore > b.threshold && b.rare) {
          const ratio = rareRatio(t.x, b.rare, b.params, this.model.zClip);
          if (ratio < 1) {
            windowScore = Math.min(windowScore, b.threshold * ratio);
            this.m.rareWindows.inc();
          }
        }
        // Drift: the machine's per-feature EWMA of the model's residuals, in units of its baseline spread.
        // It enters the reported score scaled so that drift = limit lands on the threshold: one score, one
        // threshold and one k-of-n rule for both statistics.
        // Two averages: a fast one (minutes to hours: wear, a choking filter) and a slow one (days: a sensor
        // losing its calibration), each against its own limit; the one further over its limit speaks.
        let drift: ReturnType<typeof driftValue> | null = null;
        let driftTc = 0;
        let driftLimit = this.cfg.drift.limit;
        if (this.cfg.drift.enabled && r.resid) {
          const missed = t.st.monitorEnd !== null ? Math.round((t.w.end - t.st.monitorEnd) / this.hopOf(t.st)) - 1 : 0;
          if (b.drift && b.drift.sigma.length === r.resid.length) {
            t.st.drift = advanceDrift(t.st.drift, b.drift, r.resid, missed);
            drift = driftValue(t.st.drift, b.drift.sigma);
            driftTc = this.driftTimeConstantMs();
          }
          if (b.driftSlow && b.driftSlow.sigma.length === r.resid.length) {
            t.st.driftSlow = advanceDrift(t.st.driftSlow, b.driftSlow, r.resid, missed);
            const slow = driftValue(t.st.driftSlow, b.driftSlow.sigma);
            const slowLimit = this.cfg.drift.slowLimit;
            if (!drift || slow.value / slowLimit > drift.value / driftLimit) {
              drift = slow;
              driftTc = this.slowDriftTimeConstantMs();
              driftLimit = slowLimit;
            }
          }
        }
        // Recurrence: slots of the last horizon with a far-out window, per feature, against the baseline's rate; enters
        // the score the same way (recurrence 1 = the threshold).
        let recur: ReturnType<typeof recurrenceValue> | null = null;
        const rc = b.recurrence;
        if (this.cfg.recurrence.enabled && rc && r.resid && rc.p.length === r.resid.length) {
          if (!t.st.recur || t.st.recur.hit.length !== rc.p.length) t.st.recur = initialRecurrenceState(rc.p.length);
          updateRecurrence(t.st.recur, r.resid, t.w.end, rc);
          recur = recurrenceValue(t.st.recur, rc);
        }
        t.st.monitorEnd = Math.max(t.st.monitorEnd ?? -Infinity, t.w.end);
        if (t.st.monitorEnd - t.st.monitorSavedEnd >= MONITOR_SAVE_EVERY_MS) this.saveMonitor(t.st);
        const driftScore = drift ? (b.threshold * drift.value) / driftLimit : 0;
        const recurScore = recur ? b.threshold * recur.value : 0;
        const score = Math.max(windowScore, driftScore, recurScore);
        const above = score > b.threshold;
        let contributors: Contributor[] = [];
        if (above || t.st.policy.open) {
          contributors = explain(t.x, b.params, r.contrib, r.mode, this.model.zClip, k);
          if (drift && drift.feature >= 0 && drift.value > driftLimit) {
            const dcontrib = driftContributor(b.params, drift.feature, drift.ewma, drift.value, t.x, driftTc);
            if (dcontrib) contributors = placeContributor(contributors, dcontrib, driftScore >= windowScore, k);
          }
          if (recur && rc && recur.feature >= 0 && recur.value > 1) {
            const rcontrib = recurrenceContributor(b.params, recur.feature, recur.count, recur.expected, rc);
            if (rcontrib) contributors = placeContributor(contributors, rcontrib, recurScore >= Math.max(windowScore, driftScore), k);
          }
        }
        t.st.lastScore = score;
        this.emitScore({
          machine: t.st.id,
          windowStart: t.w.start,
          windowEnd: t.w.end,
          phase: 'scoring',
          score,
          threshold: b.threshold,
          above,
          contributors,
          modelVersion: this.model.manifest.version,
        });
        this.applyPolicy(t.st, score, b.threshold, t.w.end, contributors);
      });
    });
  }

  private saveMonitor(st: MachineState): void {
    if (st.monitorEnd === null) return;
    this.store.putMonitor(st.id, { end: st.monitorEnd, drift: st.drift ? Array.from(st.drift.e) : null, driftSlow: st.driftSlow ? Array.from(st.driftSlow.e) : null, recurrence: st.recur ? saveRecurrence(st.recur) : null });
    st.monitorSavedEnd = st.monitorEnd;
  }

  private learningDone(st: MachineState): boolean {
    const l = st.learn;
    return l !== null && l.last - l.first >= this.cfg.baseline.durationMs && l.n >= this.cfg.baseline.minWindows;
  }

  /**
   * The average cannot be longer than the baseline can calibrate: at most an eighth of the baseline, so
   * its spread is measured over several independent stretches of the baseline.
   */
  private driftTimeConstantMs(): number {
    return Math.min(this.cfg.drift.timeConstantMs, this.cfg.baseline.durationMs / 8);
  }

  /**
   * The slow average, capped the same way; off when the cap leaves it under twice the fast one (a short
   * baseline cannot tell the two apart).
   */
  private slowDriftTimeConstantMs(): number {
    const tc = Math.min(this.cfg.drift.slowTimeConstantMs, this.cfg.baseline.durationMs / 8);
    return tc >= 2 * this.driftTimeConstantMs() ? tc : 0;
  }

  /** Same cap as the drift time constant: the baseline must hold several horizons to calibrate the rate. */
  private recurrenceHorizonMs(): number {
    return Math.min(this.cfg.recurrence.horizonMs, this.cfg.baseline.durationMs / 8);
  }

  /**
   * A slot must span at least two windows: the far-out windows of one short event end within one window
   * length, so with shorter slots one event fills consecutive slots and the count no longer measures
   * recurrence (a short baseline caps the horizon, e.g. a few hundred seconds of recorded data).
   */
  private recurrenceSlotsFit(windowMs: number): boolean {
    return this.recurrenceHorizonMs() / this.cfg.recurrence.slots >= 2 * windowMs;
  }

  private fitOptions() {
    const b = this.cfg.baseline;
    return { minShrinkage: b.minShrinkage, scaleFloorRel: b.scaleFloorRel, scaleFloorAbs: 1e-9, maxModes: b.maxModes, minModeWindows: b.minModeWindows };
  }

  /** Fit the machine's baseline and calibrate its threshold on out-of-sample baseline scores. */
  private async fit(st: MachineState): Promise<void> {
    const man = this.model.manifest;
    const learnt = this.store.learningWindows(st.id);
    const rows = learnt.map((r) => r.row);
    const counters = man.layout === 'fixed' || !this.cfg.baseline.counters ? new Set<string>() : counterMetrics(rows);
    const keys = man.layout === 'fixed' ? [...(man.featureOrder as string[])] : selectFeatureKeys(rows, this.cfg.baseline.features, 0.5, this.cfg.baseline.maxFeatures, counters);
    try {
      if (keys.length === 0) throw new Error('no metric was present in at least half of the baseline windows');
      const vectors = rows.map((r) => vectorize(r, keys));
      const opts = this.fitOptions();
      const params = fitParams(vectors, keys, opts);
      const block = 2 * Math.ceil(this.cfg.windowMs / this.cfg.hopMs);
      const folds = blockFolds(vectors.length, this.cfg.threshold.folds, block);
      const reqs: ScoreRequest[] = [];
      const at: number[] = [];
      for (let f = 0; f < this.cfg.threshold.folds; f++) {
        const train = vectors.filter((_, i) => folds[i] !== f);
        const testIdx = vectors.map((_, i) => i).filter((i) => folds[i] === f);
        if (testIdx.length === 0 || train.length < 2) continue;
        // Yield between fold fits: each is synchronous work, and ingest (acks) must not wait for all six.
        await new Promise<void>((r) => setImmediate(r));
        const p = fitParams(train, keys, opts);
        for (const i of testIdx) {
          reqs.push({ x: vectors[i] as Float64Array, params: p });
          at.push(i);
        }
      }
      const res = await this.model.score(reqs);
      const scores = res.map((r) => r.score).filter((s) => Number.isFinite(s));
      const t = this.cfg.threshold;
      const { threshold, qValue } = calibrateThreshold(scores, t);
      // Out-of-sample scores and residuals back in time order (the folds dealt the windows round-robin).
      const byWindow = new Array<number>(vectors.length).fill(NaN);
      const series: Array<Float64Array | undefined> = new Array(vectors.length);
      res.forEach((r, j) => {
        byWindow[at[j] as number] = r.score;
        if (r.resid) series[at[j] as number] = r.resid;
      });
      // The baseline's own would-be alerts, kept as rare states (rare.ts).
      const pol = this.cfg.policy;
      const rare = calibrateRare(vectors, byWindow, threshold, params, { zClip: this.model.zClip, k: pol.k, n: pol.n, overlap: Math.ceil(this.cfg.windowMs / this.cfg.hopMs), max: t.rareStates });
      // Drift spread: the same EWMA run over the out-of-sample residuals in time order.
      let drift: FittedBaseline['drift'];
      let driftSlow: FittedBaseline['driftSlow'];
      let recurrence: FittedBaseline['recurrence'];
      if ((this.cfg.drift.enabled || this.cfg.recurrence.enabled) && this.model.hasResiduals) {
        const ordered = series.filter((x): x is Float64Array => x !== undefined);
        if (this.cfg.drift.enabled && ordered.length > 0) {
          const lambda = driftLambda(this.hopOf(st), this.driftTimeConstantMs());
          drift = calibrateDrift(ordered, keys.length, lambda, this.cfg.drift.clip, this.cfg.windowMs / this.cfg.hopMs);
          const slowTc = this.slowDriftTimeConstantMs();
          if (slowTc > 0) driftSlow = calibrateDrift(ordered, keys.length, driftLambda(this.hopOf(st), slowTc), this.cfg.drift.clip, this.cfg.windowMs / this.cfg.hopMs);
        }
        if (this.cfg.recurrence.enabled && ordered.length > 0 && this.recurrenceSlotsFit(this.windowOf(st))) {
          const rcfg = this.cfg.recurrence;
          recurrence = calibrateRecurrence(ordered, keys.length, { level: rcfg.level, horizonMs: this.recurrenceHorizonMs(), slots: rcfg.slots, hopMs: this.hopOf(st), budget: rcfg.falseAlertsPerWeek, lambda: driftLambda(this.hopOf(st), this.driftTimeConstantMs()), clip: this.cfg.drift.clip });
        }
      }
      const metrics = [...new Set(keys.map((k) => k.slice(0, k.lastIndexOf(':'))))];
      const counted = metrics.filter((m) => counters.has(m));
      const first = learnt[0] as { start: number };
      const last = learnt[learnt.length - 1] as { end: number };
      const b: FittedBaseline = {
        machine: st.id,
        modelName: man.name,
        modelVersion: man.version,
        params,
        threshold,
        calibration: { quantile: t.quantile, margin: t.margin, n: scores.length, p50: quantile(scores, 0.5), p99: quantile(scores, 0.99), max: Math.max(...scores), qValue },
        windows: rows.length,
        from: first.start,
        to: last.end,
        fittedAt: this.now(),
        metrics,
        windowScale: st.scale ?? 1,
        ...(counted.length > 0 ? { counters: counted } : {}),
        ...(st.intervalMs !== null ? { samplingIntervalMs: st.intervalMs } : {}),
        ...(drift ? { drift } : {}),
        ...(driftSlow ? { driftSlow } : {}),
        ...(recurrence ? { recurrence } : {}),
        ...(rare ? { rare } : {}),
      };
      this.store.transaction(() => {
        this.store.putBaseline(b);
        this.store.clearLearning(st.id);
        this.store.deleteMonitor(st.id);
      });
      st.baseline = b;
      st.phase = 'scoring';
      st.learn = null;
      st.seenMetrics = new Set();
      forgetRunning(st);
      this.m.baselinesFitted.inc();
      this.deps.logger.info(
        { machine: st.id, windows: b.windows, features: keys.length, modes: params.modes.length, threshold: Number(threshold.toFixed(3)), ...(counted.length > 0 ? { counters: counted } : {}) },
        'baseline learnt; machine is now scored',
      );
    } catch (e) {
      this.m.errors.inc({ code: 'fit_failed' });
      this.deps.logger.error({ machine: st.id, err: e }, 'baseline fit failed; the machine keeps learning from new windows');
      // Keep the newest half so a machine with a temporary problem (too few metrics) does not loop forever.
      const keep = learnt.slice(Math.floor(learnt.length / 2));
      this.store.transaction(() => {
        this.store.clearLearning(st.id);
        for (const r of keep) this.store.putLearningWindow(st.id, r.start, r.end, r.row);
      });
      const k0 = keep[0];
      st.learn = k0 ? { n: keep.length, first: k0.start, last: keep.reduce((m, r) => Math.max(m, r.end), k0.end) } : null;
    }
  }

  private emitScore(s: WindowScore): void {
    if (this.cfg.historyDays > 0) this.store.putScore(s);
    this.emit('score', s);
  }

  private applyPolicy(st: MachineState, score: number, threshold: number, end: number, contributors: Contributor[]): void {
    const pol = this.cfg.policy;
    const d = stepPolicy(st.policy, pol, score, threshold, end, [...new Set(contributors.map((c) => c.metric))]);
    if (d.type === 'none') {
      if (st.policy.open || st.policy.history.some((h) => h.above)) this.store.putCondition(st.id, st.policy);
      return;
    }
    this.store.putCondition(st.id, st.policy);
    const top = contributors.map((c) => c.text).join('; ');
    if (d.type === 'open' || d.type === 'update') {
      this.m.conditions.inc({ event: d.type });
      this.emit('condition', {
        machine: st.id,
        kind: 'anomaly',
        active: true,
        eventTs: d.since,
        severity: d.severity,
        score,
        threshold,
        contributors,
        message: `${d.type === 'update' && d.reason === 'channel' ? `Anomaly still open, now led by ${contributors[0]?.metric ?? 'another channel'}: score` : 'Anomaly score'} ${score.toFixed(1)} above threshold ${threshold.toFixed(1)} for ${d.aboveCount} of the last ${pol.n} windows${top ? `: ${top}` : ''}`,
      } satisfies ConditionEvent);
    } else {
      this.m.conditions.inc({ event: 'clear' });
      this.emit('condition', {
        machine: st.id,
        kind: 'anomaly',
        active: false,
        eventTs: d.at,
        severity: 'info',
        score,
        threshold,
        contributors: [],
        message: `Anomaly score back below ${(threshold * pol.clearRatio).toFixed(1)} for ${pol.clearWindows} windows`,
      } satisfies ConditionEvent);
    }
  }

  baseline(machine: string): BaselineInfo | undefined {
    const st = this.machinesById.get(machine);
    if (!st) return undefined;
    return this.baselineInfo(st);
  }

  private baselineInfo(st: MachineState): BaselineInfo {
    const cfg = this.cfg.baseline;
    const b = st.baseline;
    if (st.phase === 'scoring' && b) {
      return {
        machine: st.id,
        phase: 'scoring',
        progress: 1,
        windows: b.windows,
        minWindows: cfg.minWindows,
        durationMs: cfg.durationMs,
        from: b.from,
        to: b.to,
        fittedAt: b.fittedAt,
        threshold: b.threshold,
        metrics: b.metrics,
        counters: b.counters ?? [],
        features: b.params.featureKeys,
        modes: b.params.modes.length,
        rareStates: b.rare?.z.length ?? 0,
        unlearnedMetrics: [...st.seenMetrics].filter((m) => !b.metrics.includes(m)).sort(),
        modelVersion: b.modelVersion,
        ...this.cadenceInfo(st),
      };
    }
    const l = st.learn;
    const span = l ? l.last - l.first : 0;
    const progress = Math.min(1, span / cfg.durationMs, (l?.n ?? 0) / cfg.minWindows);
    return {
      machine: st.id,
      phase: 'learning',
      progress,
      windows: l?.n ?? 0,
      minWindows: cfg.minWindows,
      durationMs: cfg.durationMs,
      from: l ? l.first : null,
      to: l ? l.last : null,
      fittedAt: null,
      threshold: null,
      metrics: [],
      counters: [],
      features: [],
      modes: 0,
      rareStates: 0,
      unlearnedMetrics: [],
      modelVersion: null,
      ...this.cadenceInfo(st),
    };
  }

  private cadenceInfo(st: MachineState): Pick<BaselineInfo, 'windowMs' | 'hopMs' | 'samplingIntervalMs' | 'reportByException' | 'sparseWindows'> {
    const sparseWindows = st.windower?.sparseWindows ?? 0;
    if (st.scale === null) return { windowMs: null, hopMs: null, samplingIntervalMs: null, reportByException: false, sparseWindows };
    return { windowMs: this.windowOf(st), hopMs: this.hopOf(st), samplingIntervalMs: st.intervalMs, reportByException: st.hold !== null, sparseWindows };
  }

  resetBaseline(machine: string): BaselineInfo {
    const st = this.state(machine);
    const wasOpen = st.policy.open;
    this.store.transaction(() => {
      this.store.deleteBaseline(machine);
      this.store.clearLearning(machine);
      this.store.deleteCondition(machine);
      this.store.deleteMonitor(machine);
      this.store.deleteCadence(machine);
    });
    this.pending = this.pending.filter((p) => p.machine !== machine);
    st.baseline = null;
    st.phase = 'learning';
    st.learn = null;
    // Re-learning times the machine's cadence again too (a PLC reconfigured during maintenance); the open
    // windows of the old baseline's cadence are given up (they would only have been learning windows).
    st.windower = null;
    st.probe = null;
    st.scale = this.probes() ? null : 1;
    st.intervalMs = null;
    st.hold = null;
    st.policy = initialPolicyState();
    st.seenMetrics = new Set();
    forgetRunning(st);
    this.m.resets.inc();
    if (wasOpen) {
      this.m.conditions.inc({ event: 'clear' });
      this.emit('condition', {
        machine,
        kind: 'anomaly',
        active: false,
        eventTs: st.lastWindowEnd ?? this.now(),
        severity: 'info',
        contributors: [],
        message: 'Baseline reset on request: the machine is learning its normal behaviour again',
      } satisfies ConditionEvent);
    }
    this.deps.logger.info({ machine }, 'baseline reset; re-learning');
    return this.baselineInfo(st);
  }

  machines(): MachineDetectionStatus[] {
    return [...this.machinesById.values()]
      .map((st) => ({
        machine: st.id,
        phase: st.phase,
        progress: this.baselineInfo(st).progress,
        lastWindowEnd: st.lastWindowEnd,
        lastScore: st.lastScore,
        threshold: st.baseline?.threshold ?? null,
        anomalyOpen: st.policy.open,
        lateReadings: st.windower?.lateReadings ?? 0,
      }))
      .sort((a, b) => a.machine.localeCompare(b.machine));
  }

  modelInfo(): ModelInfo {
    const s = this.model.stats;
    return {
      name: this.model.manifest.name,
      version: this.model.manifest.version,
      manifestPath: this.model.manifestPath,
      modelPath: this.model.modelPath,
      manifest: this.model.manifest,
      inferenceRuns: s.runs,
      windowsScored: s.windowsScored,
      meanLatencyMs: s.runs > 0 ? s.totalRunMs / s.runs : 0,
      lastLatencyMs: s.lastRunMs,
    };
  }

  anomalyHistory(machine: string, from: number, to: number, limit = 10_000): StoredScore[] {
    return this.store.scores(machine, from, to, limit);
  }

  pendingCount(): number {
    return this.pending.length;
  }

  phaseCounts(): { learning: number; scoring: number } {
    let learning = 0;
    let scoring = 0;
    for (const st of this.machinesById.values()) {
      if (st.phase === 'learning') learning++;
      else scoring++;
    }
    return { learning, scoring };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Score what is queued (not the still-open windows: they resume from the next readings after restart
    // only as far as those readings go; a partial window is better unscored than scored half-empty).
    await this.flush().catch((e: unknown) => this.deps.logger.error({ err: e }, 'final detection flush failed'));
    this.closed = true;
    try {
      this.store.transaction(() => {
        for (const st of this.machinesById.values()) if (st.phase === 'scoring' && st.monitorEnd !== null && st.monitorEnd > st.monitorSavedEnd) this.saveMonitor(st);
      });
    } catch (e) {
      this.deps.logger.error({ err: e }, 'could not save the running drift and recurrence statistics; they restart from their last saved state');
    }
    this.store.close();
    await this.model.close();
  }
}

/** One window into a drift average: a new or mismatched state starts at 0, otherwise missed hops decay it first. */
function advanceDrift(state: DriftState | null, cal: DriftCalibration, resid: ArrayLike<number>, missed: number): DriftState {
  let s = state;
  if (!s || s.e.length !== cal.sigma.length) s = initialDriftState(cal.sigma.length);
  else decayDrift(s, missed, cal.lambda);
  updateDrift(s, resid, cal.lambda, cal.clip);
  return s;
}

/** Drop the running drift and recurrence statistics (a new or forgotten baseline starts them from 0). */
function forgetRunning(st: MachineState): void {
  st.drift = null;
  st.driftSlow = null;
  st.recur = null;
  st.monitorEnd = null;
  st.monitorSavedEnd = -Infinity;
}

/**
 * A statistic's contributor goes first when that statistic carries the score, otherwise last; at most k.
 */
function placeContributor(list: readonly Contributor[], c: Contributor, leads: boolean, k: number): Contributor[] {
  return (leads ? [c, ...list] : [...list.slice(0, k - 1), c]).slice(0, k);
}

function saveRecurrence(r: RecurrenceState): NonNullable<MonitorState['recurrence']> {
  const hit: Array<[number, number]> = [];
  r.hit.forEach((list, i) => {
    for (const slot of list) hit.push([i, slot]);
  });
  return { hit, local: Array.from(r.local) };
}

/** Back from the store; a state that does not fit the baseline's features starts empty. */
function restoreRecurrence(saved: MonitorState['recurrence'], features: number): RecurrenceState | null {
  if (!saved || features === 0 || saved.local.length !== features || saved.hit.some(([i]) => i >= features)) return null;
  const st = initialRecurrenceState(features);
  st.local.set(saved.local);
  for (const [i, slot] of [...saved.hit].sort((a, b) => a[1] - b[1])) (st.hit[i] as number[]).push(slot);
  return st;
}

function createMetrics(registry: Registry | undefined, d: DetectionImpl) {
  const registers = registry ? [registry] : [];
  return {
    readings: new Counter({ name: 'smartops_detect_readings_total', help: 'Readings seen by detection, by result (accepted, late = beyond the lateness bound, untracked = over maxMachines).', labelNames: ['result'], registers }),
    windows: new Counter({ name: 'smartops_detect_windows_total', help: 'Closed windows by result (scored, learning, sparse = too few readings, dropped = scoring could not keep up).', labelNames: ['result'], registers }),
    inferRuns: new Counter({ name: 'smartops_detect_inference_runs_total', help: 'Scoring batches run through onnxruntime.', registers }),
    inferSeconds: new Histogram({ name: 'smartops_detect_inference_seconds', help: 'Duration of one scoring batch.', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers }),
    conditions: new Counter({ name: 'smartops_detect_condition_events_total', help: 'Anomaly condition events emitted (open, update, clear).', labelNames: ['event'], registers }),
    rareWindows: new Counter({ name: 'smartops_detect_rare_state_windows_total', help: 'Windows above the threshold not counted as above because they are close to a rare state of the machine\'s own baseline.', registers }),
    baselinesFitted: new Counter({ name: 'smartops_detect_baselines_fitted_total', help: 'Baselines fitted.', registers }),
    resets: new Counter({ name: 'smartops_detect_baseline_resets_total', help: 'Baseline resets on request.', registers }),
    errors: new Counter({ name: 'smartops_detect_errors_total', help: 'Detection errors by code.', labelNames: ['code'], registers }),
    pending: new Gauge({
      name: 'smartops_detect_pending_windows',
      help: 'Closed windows waiting to be scored.',
      registers,
      collect() {
        this.set(d.pendingCount());
      },
    }),
    machines: new Gauge({
      name: 'smartops_detect_machines',
      help: 'Machines tracked by detection, by phase.',
      labelNames: ['phase'],
      registers,
      collect() {
        const c = d.phaseCounts();
        this.set({ phase: 'learning' }, c.learning);
        this.set({ phase: 'scoring' }, c.scoring);
      },
    }),
  };
}

/**
 * Start detection: validate config, load and check the model (refused with DETECT_MODEL_* naming what
 * differs), open the store and restore baselines and open conditions.
 */
export async function createDetection(config: DetectionConfig, deps: DetectionDeps): Promise<Detection> {
  const parsed = detectionConfigSchema.safeParse(config);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new DetectError('DETECT_CONFIG_INVALID', `detection.${i?.path.map(String).join('.') ?? ''}: ${i?.message ?? 'invalid'}`);
  }
  const cfg = parsed.data;
  if (cfg.hopMs > cfg.windowMs) throw new DetectError('DETECT_CONFIG_INVALID', `detection.hopMs (${cfg.hopMs}) must not exceed detection.windowMs (${cfg.windowMs})`);
  if (cfg.targetSamplesPerWindow > 0 && cfg.targetSamplesPerWindow < cfg.minSamplesPerWindow) {
    throw new DetectError('DETECT_CONFIG_INVALID', `detection.targetSamplesPerWindow (${cfg.targetSamplesPerWindow}) must be 0 or at least detection.minSamplesPerWindow (${cfg.minSamplesPerWindow}): windows sized for fewer readings would not be scored`);
  }
  if (cfg.policy.k > cfg.policy.n) throw new DetectError('DETECT_CONFIG_INVALID', `detection.policy.k (${cfg.policy.k}) must not exceed detection.policy.n (${cfg.policy.n})`);
  const manifestPath = cfg.model.manifest || builtinManifestPath();
  const model = await ScoringModel.load(manifestPath, { maxBatchFloats: cfg.model.maxBatchFloats });
  let store: DetectionStore;
  try {
    store = new DetectionStore(deps.dataDir);
  } catch (e) {
    await model.close();
    throw e;
  }
  deps.logger.info({ model: model.manifest.name, version: model.manifest.version, manifest: manifestPath }, 'detection model loaded');
  return new DetectionImpl(cfg, deps, model, store);
}
