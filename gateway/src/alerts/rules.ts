/**
 * Rules beside the model: static limits per metric and a silence rule. Both turn what they see
 * into ConditionEvents (kind 'limit' / 'silence'), the same contract the anomaly detector uses,
 * so the alert lifecycle treats every kind alike.
 *
 * Limits run on event time (reading ts); silence runs on the gateway clock (arrival), because
 * "the machine stopped sending" is about now, not about the timestamps it sent.
 */
import type { ConditionEvent, Contributor, Severity } from '../contract/detection.js';
import type { Reading } from '../contract/reading.js';
import { type LimitRule, severityRank } from './config.js';

export type Emit = (e: ConditionEvent) => void;
export type KindOf = (machine: string) => string | undefined;

/**
 * Re-emitting a limit alert because its peak worsened happens at most this often (event time), bounding
 * alert-store writes. A worse peak inside the window is held back, not dropped (MachineLimits.heldPeak).
 */
const LIMIT_REEMIT_MIN_MS = 5000;
/** Upper bound of machines the rules keep state for; beyond it new machines are ignored and counted. */
export const MAX_TRACKED_MACHINES = 10_000;

interface RuleState {
  rule: LimitRule;
  /** Event time of the first reading of the current unbroken violation. */
  violatingSince: number | null;
  active: boolean;
  lastTs: number;
  /** Value furthest outside the limit during the current violation. */
  worst: number | null;
}

interface MachineLimits {
  /** metric -> state of each rule that applies to this machine and metric. */
  byMetric: Map<string, RuleState[]>;
  active: boolean;
  startedAt: number;
  lastEmitTs: number;
  lastEmitKey: string;
  lastEmitExcess: number;
  /**
   * The worst state the rate limit held back, with its excess: it goes out before anything that would
   * lose it (a clear, or an update without the metric that reached it), so the stored peak is the true one.
   */
  heldPeak: { event: ConditionEvent; excess: number } | null;
  /** After a restart: metrics of the open limit alert not yet seen back inside their limits. */
  pending: Set<string>;
  pendingSeverity: Severity;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(4)));
}

/** Which side of the rule a value violates, or null when inside. */
function violation(rule: LimitRule, v: number): 'min' | 'max' | null {
  if (rule.max !== undefined && v > rule.max) return 'max';
  if (rule.min !== undefined && v < rule.min) return 'min';
  return null;
}

/** Relative distance beyond the violated limit (comparable across metrics of different units). */
function excess(rule: LimitRule, v: number): number {
  const side = violation(rule, v);
  if (side === null) return 0;
  const limit = side === 'max' ? (rule.max as number) : (rule.min as number);
  return Math.abs(v - limit) / Math.max(Math.abs(limit), 1e-9);
}

function isFurther(rule: LimitRule, v: number, than: number | null): boolean {
  return than === null || excess(rule, v) > excess(rule, than);
}

/** Inside the limit by at least the deadband (hysteresis before clearing). */
function clearedWithDeadband(rule: LimitRule, v: number): boolean {
  const d = rule.deadbandAbs;
  return (rule.min === undefined || v >= rule.min + d) && (rule.max === undefined || v <= rule.max - d);
}

export function limitContributor(rule: LimitRule, value: number): Contributor {
  const side = violation(rule, value) ?? (rule.max !== undefined ? 'max' : 'min');
  const limit = side === 'max' ? (rule.max as number) : (rule.min as number);
  return {
    metric: rule.metric,
    feature: side,
    value,
    baseline: limit,
    ratio: limit !== 0 ? value / limit : value,
    text: `${rule.metric} ${fmt(value)} ${side === 'max' ? 'above max' : 'below min'} ${fmt(limit)}`,
  };
}

export class LimitRules {
  private readonly machines = new Map<string, MachineLimits>();
  /** Machines ignored because MAX_TRACKED_MACHINES was reached. */
  overflow = 0;

  constructor(
    private readonly rules: readonly LimitRule[],
    private readonly kindOf: KindOf,
    private readonly emit: Emit,
  ) {}

  get enabled(): boolean {
    return this.rules.length > 0;
  }

  /**
   * Rules for (machine, metric): machine-specific rules win over kind rules, which win over global
   * ones, so one machine can get its own limit without copying the rest of its kind's rules.
   */
  private rulesFor(machine: string): Map<string, RuleState[]> {
    const kind = this.kindOf(machine);
    const levels = new Map<string, { level: number; rules: LimitRule[] }>();
    for (const rule of this.rules) {
      let level: number;
      if (rule.machine !== undefined) {
        if (rule.machine !== machine) continue;
        if (rule.kind !== undefined && rule.kind !== kind) continue;
        level = 3;
      } else if (rule.kind !== undefined) {
        if (rule.kind !== kind) continue;
        level = 2;
      } else level = 1;
      const cur = levels.get(rule.metric);
      if (!cur || level > cur.level) levels.set(rule.metric, { level, rules: [rule] });
      else if (level === cur.level) cur.rules.push(rule);
    }
    const byMetric = new Map<string, RuleState[]>();
    for (const [metric, { rules }] of levels) {
      byMetric.set(metric, rules.map((rule) => ({ rule, violatingSince: null, active: false, lastTs: -Infinity, worst: null })));
    }
    return byMetric;
  }

  private state(machine: string): MachineLimits | undefined {
    let s = this.machines.get(machine);
    if (!s) {
      if (this.machines.size >= MAX_TRACKED_MACHINES) {
        this.overflow++;
        return undefined;
      }
      s = {
        byMetric: this.rulesFor(machine),
        active: false,
        startedAt: 0,
        lastEmitTs: -Infinity,
        lastEmitKey: '',
        lastEmitExcess: 0,
        heldPeak: null,
        pending: new Set(),
        pendingSeverity: 'info',
      };
      this.machines.set(machine, s);
    }
    return s;
  }

  /**
   * After a restart: the store has an open limit alert for this machine. Keep it open until every
   * metric it names has been seen back inside its limits (metrics without a rule any more are
   * dropped at once; if none remain, the clear is emitted right away at `now`).
   */
  seedActive(machine: string, startedAt: number, metrics: string[], severity: Severity, now: number): void {
    const s = this.state(machine);
    if (!s) return;
    s.active = true;
    s.startedAt = startedAt;
    s.lastEmitTs = now;
    s.pendingSeverity = severity;
    for (const m of metrics) if (s.byMetric.has(m)) s.pending.add(m);
    if (s.pending.size === 0) {
      s.active = false;
      this.emit({
        machine,
        kind: 'limit',
        active: false,
        eventTs: now,
        severity,
        contributors: [],
        message: `No limit rule applies any more to the metrics of this alert (configuration changed)`,
      });
    }
  }

  onReadings(readings: readonly Reading[]): void {
    if (this.rules.length === 0) return;
    for (const r of readings) {
      const s = this.state(r.machine);
      if (!s || s.byMetric.size === 0) continue;
      let touched = false;
      for (const [metric, value] of Object.entries(r.metrics)) {
        const states = s.byMetric.get(metric);
        if (!states) continue;
        touched = true;
        let anyActive = false;
        for (const st of states) {
          // Duration logic needs monotonic time: an out-of-order reading is skipped here (it is still stored).
          if (r.ts < st.lastTs) continue;
          st.lastTs = r.ts;
          if (violation(st.rule, value) !== null) {
            if (st.violatingSince === null) {
              st.violatingSince = r.ts;
              st.worst = value;
            } else if (isFurther(st.rule, value, st.worst)) st.worst = value;
            if (!st.active && r.ts - st.violatingSince >= st.rule.forMs) st.active = true;
          } else if (!st.active || clearedWithDeadband(st.rule, value)) {
            st.active = false;
            st.violatingSince = null;
            st.worst = null;
          }
          if (st.active) anyActive = true;
        }
        if (!anyActive) s.pending.delete(metric);
      }
      if (touched) this.evaluate(r.machine, s, r.ts);
    }
  }

  private evaluate(machine: string, s: MachineLimits, ts: number): void {
    const active: RuleState[] = [];
    for (const states of s.byMetric.values()) for (const st of states) if (st.active) active.push(st);
    if (active.length === 0 && s.pending.size === 0) {
      if (s.active) {
        if (s.heldPeak) this.emit(s.heldPeak.event);
        s.heldPeak = null;
        s.active = false;
        s.lastEmitKey = '';
        s.lastEmitExcess = 0;
        this.emit({
          machine,
          kind: 'limit',
          active: false,
          eventTs: ts,
          severity: 'info',
          contributors: [],
          message: 'All limits back within range',
        });
      }
      return;
    }
    if (active.length === 0) return; // only restart-seeded metrics still unconfirmed
    active.sort((a, b) => excess(b.rule, b.worst as number) - excess(a.rule, a.worst as number));
    const top = active[0] as RuleState;
    const topExcess = excess(top.rule, top.worst as number);
    let severity: Severity = s.pending.size > 0 ? s.pendingSeverity : 'info';
    for (const st of active) if (severityRank(st.rule.severity) > severityRank(severity)) severity = st.rule.severity;
    const key = `${severity}|${active.map((st) => `${st.rule.metric}:${st.rule.min ?? ''}:${st.rule.max ?? ''}`).sort().join(',')}`;
    if (!s.active) {
      s.active = true;
      s.startedAt = Math.min(...active.map((st) => st.violatingSince as number));
    } else if (key === s.lastEmitKey && !(topExcess > s.lastEmitExcess && ts - s.lastEmitTs >= LIMIT_REEMIT_MIN_MS)) {
      // Inside the window: remember a worse peak (the next emit after the window carries it anyway,
      // as `worst` only grows while a rule stays active; the clear or a key change might not).
      if (topExcess > Math.max(s.lastEmitExcess, s.heldPeak?.excess ?? 0)) {
        s.heldPeak = { event: this.activeEvent(machine, s, active, severity), excess: topExcess };
      }
      return;
    }
    if (s.heldPeak && s.heldPeak.excess > topExcess) {
      this.emit(s.heldPeak.event);
      s.lastEmitExcess = Math.max(s.lastEmitExcess, s.heldPeak.excess);
    }
    s.heldPeak = null;
    s.lastEmitKey = key;
    s.lastEmitTs = ts;
    s.lastEmitExcess = Math.max(s.lastEmitExcess, topExcess);
    this.emit(this.activeEvent(machine, s, active, severity));
  }

  /** The active condition for `active` (rule states sorted furthest outside their limit first). */
  private activeEvent(machine: string, s: MachineLimits, active: RuleState[], severity: Severity): ConditionEvent {
    const top = active[0] as RuleState;
    const contributors = active.map((st) => limitContributor(st.rule, st.worst as number));
    const topC = contributors[0] as Contributor;
    const since = new Date(s.startedAt).toISOString();
    return {
      machine,
      kind: 'limit',
      active: true,
      eventTs: s.startedAt,
      severity,
      score: top.worst as number,
      threshold: topC.baseline,
      contributors,
      message:
        contributors.length === 1
          ? `${topC.text} since ${since}`
          : `${contributors.length} limits violated since ${since}: ${contributors.map((c) => c.text).join('; ')}`,
    };
  }
}

export class SilenceRule {
  private readonly lastSeen = new Map<string, number>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  /** Machines ignored because MAX_TRACKED_MACHINES was reached. */
  overflow = 0;

  /**
   * @param afterMs silence threshold; 0 disables the rule.
   * @param bootTime gateway start: a machine known from before a restart gets `afterMs` from here
   *   before it counts as silent, so a restart does not page for every machine at once.
   */
  constructor(
    private readonly afterMs: number,
    private readonly severity: Severity,
    private readonly emit: Emit,
    private readonly bootTime: number,
    known: Map<string, number> = new Map(),
  ) {
    for (const [m, t] of known) if (this.lastSeen.size < MAX_TRACKED_MACHINES) this.lastSeen.set(m, t);
  }

  get enabled(): boolean {
    return this.afterMs > 0;
  }

  /** After a restart: the store has an open silence alert for this machine. */
  seedActive(machine: string, now: number): void {
    if (!this.enabled) {
      this.emit({ machine, kind: 'silence', active: false, eventTs: now, severity: this.severity, contributors: [], message: 'Silence rule disabled (alerts.silenceAfterMs = 0)' });
      return;
    }
    this.active.add(machine);
    if (!this.lastSeen.has(machine) && this.lastSeen.size < MAX_TRACKED_MACHINES) this.lastSeen.set(machine, now);
  }

  seen(machines: Iterable<string>, now: number): void {
    for (const m of machines) this.seenOne(m, now);
  }

  seenOne(m: string, now: number): void {
    if (!this.lastSeen.has(m) && this.lastSeen.size >= MAX_TRACKED_MACHINES) {
      this.overflow++;
      return;
    }
    this.lastSeen.set(m, now);
    this.dirty.add(m);
    if (this.active.delete(m) && this.enabled) {
      this.emit({ machine: m, kind: 'silence', active: false, eventTs: now, severity: this.severity, contributors: [], message: `${m} is sending again` });
    }
  }

  tick(now: number): void {
    if (!this.enabled) return;
    for (const [m, last] of this.lastSeen) {
      if (this.active.has(m)) continue;
      const silentFor = now - Math.max(last, this.bootTime);
      if (silentFor < this.afterMs) continue;
      this.active.add(m);
      const secs = (now - last) / 1000;
      this.emit({
        machine: m,
        kind: 'silence',
        active: true,
        eventTs: last,
        severity: this.severity,
        score: secs,
        threshold: this.afterMs / 1000,
        contributors: [],
        message: `No readings from ${m} for ${fmtDuration(now - last)} (last received ${new Date(last).toISOString()}; limit ${fmtDuration(this.afterMs)})`,
      });
    }
  }

  /** Stop watching a machine until it sends again. */
  forget(machine: string): void {
    this.lastSeen.delete(machine);
    this.active.delete(machine);
    this.dirty.delete(machine);
  }

  /** Entries changed since the last call (to persist). */
  takeDirty(): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const m of this.dirty) {
      const t = this.lastSeen.get(m);
      if (t !== undefined) out.push([m, t]);
    }
    this.dirty.clear();
    return out;
  }
}

export function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
}
