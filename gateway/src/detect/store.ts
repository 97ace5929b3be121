/**
 * Durable detection state in `<dataDir>/detection.sqlite` (owned by this module only): baselines being
 * learnt (their windows) and fitted, each machine's open/closed anomaly condition, its running drift and
 * recurrence statistics, and recent window scores for GET /machines/:id/anomaly. WAL mode; writes are batched in one transaction per scoring tick.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Contributor, WindowScore } from '../contract/detection.js';
import { DetectError } from './errors.js';
import type { FeatureValues } from './features.js';
import type { ModelParams } from './baseline.js';
import type { PolicyState } from './policy.js';

export const STORE_FILE = 'detection.sqlite';

const modeSchema = z.object({ center: z.array(z.number()), scale: z.array(z.number()), precision: z.array(z.number()), windows: z.number() });
export const fittedBaselineSchema = z.object({
  machine: z.string(),
  modelName: z.string(),
  modelVersion: z.string(),
  params: z.object({ featureKeys: z.array(z.string()), center: z.array(z.number()), scale: z.array(z.number()), modes: z.array(modeSchema).min(1) }),
  threshold: z.number(),
  calibration: z.object({ quantile: z.number(), margin: z.number(), n: z.number(), p50: z.number(), p99: z.number(), max: z.number(), qValue: z.number() }),
  windows: z.number(),
  from: z.number(),
  to: z.number(),
  fittedAt: z.number(),
  metrics: z.array(z.string()),
  /** Metrics modelled as counters (by their rate); absent = none. */
  counters: z.array(z.string()).optional(),
  /** Window and hop as multiples of detection.windowMs / hopMs (cadence.ts); absent before it existed = 1. */
  windowScale: z.number().int().min(1).optional(),
  /** Median interval of the machine's first readings (ms), when it was measured. */
  samplingIntervalMs: z.number().positive().optional(),
  /** Absent in baselines fitted before the drift statistic existed (drift then stays off for that machine). */
  drift: z.object({ sigma: z.array(z.number()), lambda: z.number(), clip: z.number(), baselineMax: z.number() }).optional(),
  /** The slow drift average's calibration; absent before it existed, or when the baseline is too short for it. */
  driftSlow: z.object({ sigma: z.array(z.number()), lambda: z.number(), clip: z.number(), baselineMax: z.number() }).optional(),
  /** Absent in baselines fitted before the recurrence statistic existed (it then stays off for that machine). */
  recurrence: z
    .object({ level: z.number(), lambda: z.number(), clip: z.number(), horizonMs: z.number(), slots: z.number().int().min(1), p: z.array(z.number()), allowed: z.array(z.number()), hits: z.array(z.number()), baselineSlots: z.number() })
    .optional(),
  /** Absent in baselines fitted before rare states were kept, or when the baseline had no run above its threshold. */
  rare: z.object({ z: z.array(z.array(z.number())), r2: z.array(z.number().positive()) }).refine((r) => r.z.length === r.r2.length, 'z and r2 differ in length').optional(),
});
export type FittedBaseline = z.infer<typeof fittedBaselineSchema> & { params: ModelParams };

const cadenceSchema = z.object({ scale: z.number().int().min(1), intervalMs: z.number().positive().nullable(), hold: z.boolean() });
export type Cadence = z.infer<typeof cadenceSchema>;

const policySchema = z.object({
  open: z.boolean(),
  since: z.number().nullable(),
  reportedPeak: z.number(),
  reportedSeverity: z.enum(['warning', 'critical']).nullable(),
  history: z.array(z.object({ above: z.boolean(), end: z.number() })),
  belowRun: z.number(),
  /** Absent in conditions stored before alerts named a new leading channel. */
  reportedMetrics: z.array(z.string()).default([]),
});

/**
 * A machine's running detection statistics (drift EWMA, recurrence slots), so a restart continues them instead of
 * starting from 0. `end` = event time of the last window folded in.
 */
interface StoredBody {
  machine: string;
  body: string;
}

/** Per-machine JSON bodies checked against `schema`; a row that does not parse or validate is left out. */
function parseBodies<T>(rows: readonly StoredBody[], schema: z.ZodType<T>): Map<string, T> {
  const out = new Map<string, T>();
  for (const r of rows) {
    try {
      const p = schema.safeParse(JSON.parse(r.body));
      if (p.success) out.set(r.machine, p.data);
    } catch {
      /* not JSON: left out */
    }
  }
  return out;
}

export const monitorStateSchema = z.object({
  end: z.number(),
  drift: z.array(z.number()).nullable(),
  /** The slow drift average (absent in states saved before it existed). */
  driftSlow: z.array(z.number()).nullable().default(null),
  /** Recurrence: hit slots [feature, slot index] within the horizon, and each feature's recent level. */
  recurrence: z.object({ hit: z.array(z.tuple([z.number().int().min(0), z.number().int()])), local: z.array(z.number()) }).nullable().default(null),
});
export type MonitorState = z.infer<typeof monitorStateSchema>;

const rowSchema = z.record(z.string(), z.record(z.string(), z.number()));

/** A window score as kept for GET /api/v1/machines/:id/anomaly (the machine is the row's key). */
export type StoredScore = Omit<WindowScore, 'machine'>;

export class DetectionStore {
  private readonly db: Database.Database;
  private readonly st: {
    putLearning: Database.Statement;
    getLearning: Database.Statement;
    countLearning: Database.Statement;
    delLearning: Database.Statement;
    putBaseline: Database.Statement;
    getBaselines: Database.Statement;
    delBaseline: Database.Statement;
    putCondition: Database.Statement;
    getConditions: Database.Statement;
    delCondition: Database.Statement;
    putMonitor: Database.Statement;
    getMonitors: Database.Statement;
    delMonitor: Database.Statement;
    putCadence: Database.Statement;
    getCadences: Database.Statement;
    delCadence: Database.Statement;
    putScore: Database.Statement;
    getScores: Database.Statement;
    pruneScores: Database.Statement;
  };

  constructor(dataDir: string) {
    try {
      mkdirSync(dataDir, { recursive: true });
      this.db = new Database(join(dataDir, STORE_FILE));
      this.db.pragma('journal_mode = WAL');
      // SQLite's usual 2 MB page cache instead of better-sqlite3's 16 MB: the store is written in one
      // transaction per tick and read in bulk only at fit time; the larger cache cost ~9 MB resident.
      this.db.pragma('cache_size = -2000');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS learning (machine TEXT NOT NULL, window_start INTEGER NOT NULL, window_end INTEGER NOT NULL, row TEXT NOT NULL, PRIMARY KEY (machine, window_start));
        CREATE TABLE IF NOT EXISTS baselines (machine TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS conditions (machine TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS monitors (machine TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS cadences (machine TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS scores (machine TEXT NOT NULL, window_end INTEGER NOT NULL, window_start INTEGER NOT NULL, phase TEXT NOT NULL,
          score REAL NOT NULL, threshold REAL, above INTEGER NOT NULL, contributors TEXT NOT NULL, model_version TEXT NOT NULL, PRIMARY KEY (machine, window_end));
      `);
    } catch (e) {
      throw new DetectError('DETECT_STORE_FAILED', `cannot open ${join(dataDir, STORE_FILE)}: ${(e as Error).message}`, { cause: e });
    }
    const db = this.db;
    this.st = {
      putLearning: db.prepare('INSERT OR REPLACE INTO learning (machine, window_start, window_end, row) VALUES (?, ?, ?, ?)'),
      getLearning: db.prepare('SELECT window_start, window_end, row FROM learning WHERE machine = ? ORDER BY window_start'),
      countLearning: db.prepare('SELECT machine, COUNT(*) AS n, MIN(window_start) AS first, MAX(window_end) AS last, MIN(window_end - window_start) AS span FROM learning GROUP BY machine'),
      delLearning: db.prepare('DELETE FROM learning WHERE machine = ?'),
      putBaseline: db.prepare('INSERT OR REPLACE INTO baselines (machine, body) VALUES (?, ?)'),
      getBaselines: db.prepare('SELECT machine, body FROM baselines'),
      delBaseline: db.prepare('DELETE FROM baselines WHERE machine = ?'),
      putCondition: db.prepare('INSERT OR REPLACE INTO conditions (machine, body) VALUES (?, ?)'),
      getConditions: db.prepare('SELECT machine, body FROM conditions'),
      delCondition: db.prepare('DELETE FROM conditions WHERE machine = ?'),
      putMonitor: db.prepare('INSERT OR REPLACE INTO monitors (machine, body) VALUES (?, ?)'),
      getMonitors: db.prepare('SELECT machine, body FROM monitors'),
      delMonitor: db.prepare('DELETE FROM monitors WHERE machine = ?'),
      putCadence: db.prepare('INSERT OR REPLACE INTO cadences (machine, body) VALUES (?, ?)'),
      getCadences: db.prepare('SELECT machine, body FROM cadences'),
      delCadence: db.prepare('DELETE FROM cadences WHERE machine = ?'),
      putScore: db.prepare('INSERT OR REPLACE INTO scores (machine, window_end, window_start, phase, score, threshold, above, contributors, model_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      // Newest first, so a limit keeps the newest windows; scores() turns them back to oldest first.
      getScores: db.prepare('SELECT * FROM scores WHERE machine = ? AND window_end >= ? AND window_end <= ? ORDER BY window_end DESC LIMIT ?'),
      pruneScores: db.prepare('DELETE FROM scores WHERE window_end < ?'),
    };
  }

  transaction(fn: () => void): void {
    this.db.transaction(fn)();
  }

  putLearningWindow(machine: string, start: number, end: number, row: Map<string, FeatureValues>): void {
    const obj: Record<string, FeatureValues> = {};
    for (const [k, v] of row) obj[k] = v;
    this.st.putLearning.run(machine, start, end, JSON.stringify(obj));
  }

  learningWindows(machine: string): Array<{ start: number; end: number; row: Map<string, FeatureValues> }> {
    const rows = this.st.getLearning.all(machine) as Array<{ window_start: number; window_end: number; row: string }>;
    const out: Array<{ start: number; end: number; row: Map<string, FeatureValues> }> = [];
    for (const r of rows) {
      const parsed = rowSchema.safeParse(JSON.parse(r.row));
      if (!parsed.success) continue; // a corrupt row only loses one baseline window
      out.push({ start: r.window_start, end: r.window_end, row: new Map(Object.entries(parsed.data) as Array<[string, FeatureValues]>) });
    }
    return out;
  }

  /** Per machine learning: window count, event-time span, and the length of its windows (`span`, ms). */
  learningSummary(): Array<{ machine: string; n: number; first: number; last: number; span: number }> {
    return this.st.countLearning.all() as Array<{ machine: string; n: number; first: number; last: number; span: number }>;
  }

  clearLearning(machine: string): void {
    this.st.delLearning.run(machine);
  }

  putBaseline(b: FittedBaseline): void {
    this.st.putBaseline.run(b.machine, JSON.stringify(b));
  }

  /** Stored baselines; an unreadable one is reported in `invalid` (the machine re-learns). */
  baselines(): { valid: FittedBaseline[]; invalid: string[] } {
    const valid: FittedBaseline[] = [];
    const invalid: string[] = [];
    for (const r of this.st.getBaselines.all() as Array<{ machine: string; body: string }>) {
      try {
        const p = fittedBaselineSchema.safeParse(JSON.parse(r.body));
        if (p.success) valid.push(p.data as FittedBaseline);
        else invalid.push(r.machine);
      } catch {
        invalid.push(r.machine);
      }
    }
    return { valid, invalid };
  }

  deleteBaseline(machine: string): void {
    this.st.delBaseline.run(machine);
  }

  putCondition(machine: string, s: PolicyState): void {
    this.st.putCondition.run(machine, JSON.stringify(s));
  }

  deleteCondition(machine: string): void {
    this.st.delCondition.run(machine);
  }

  /** Stored open conditions; an unreadable one is left out (that machine starts with a closed condition). */
  conditions(): Map<string, PolicyState> {
    return parseBodies(this.st.getConditions.all() as StoredBody[], policySchema);
  }

  putMonitor(machine: string, s: MonitorState): void {
    this.st.putMonitor.run(machine, JSON.stringify(s));
  }

  deleteMonitor(machine: string): void {
    this.st.delMonitor.run(machine);
  }

  /** Stored running statistics; an unreadable one is left out (that machine's statistics start from 0). */
  monitors(): Map<string, MonitorState> {
    return parseBodies(this.st.getMonitors.all() as StoredBody[], monitorStateSchema);
  }

  /** How a machine's readings are windowed (cadence.ts), from the moment it was timed until a reset. */
  putCadence(machine: string, c: Cadence): void {
    this.st.putCadence.run(machine, JSON.stringify(c));
  }

  deleteCadence(machine: string): void {
    this.st.delCadence.run(machine);
  }

  cadences(): Map<string, Cadence> {
    return parseBodies(this.st.getCadences.all() as StoredBody[], cadenceSchema);
  }

  putScore(s: WindowScore): void {
    this.st.putScore.run(s.machine, s.windowEnd, s.windowStart, s.phase, s.score, s.threshold, s.above ? 1 : 0, JSON.stringify(s.contributors), s.modelVersion);
  }

  /** Window scores with from <= windowEnd <= to, oldest first: the newest `limit` when more match. */
  scores(machine: string, from: number, to: number, limit: number): StoredScore[] {
    const rows = this.st.getScores.all(machine, from, to, limit) as Array<{
      window_start: number;
      window_end: number;
      phase: string;
      score: number;
      threshold: number | null;
      above: number;
      contributors: string;
      model_version: string;
    }>;
    rows.reverse();
    return rows.map((r) => ({
      windowStart: r.window_start,
      windowEnd: r.window_end,
      phase: r.phase === 'learning' ? 'learning' : 'scoring',
      score: r.score,
      threshold: r.threshold,
      above: r.above === 1,
      contributors: JSON.parse(r.contributors) as Contributor[],
      modelVersion: r.model_version,
    }));
  }

  pruneScores(before: number): number {
    return this.st.pruneScores.run(before).changes;
  }

  close(): void {
    this.db.close();
  }
}
