/**
 * Alert lifecycle: open -> acknowledged -> resolved, one active alert per (machine, kind).
 *
 * Every step is one synchronous store write followed by a notification that is fire-and-forget:
 * a slow or failing notifier never delays or undoes a transition.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ConditionEvent, Contributor } from '../contract/detection.js';
import { NAME_PATTERN } from '../contract/reading.js';
import { severityRank } from './config.js';
import type { AlertsMetrics } from './metrics.js';
import type { Alert, AlertEventType, AlertListener, AlertStore, AlertTransition } from './types.js';
import { AlertError } from './types.js';

const finite = z.number().finite();
const conditionSchema = z.object({
  machine: z.string().regex(NAME_PATTERN),
  kind: z.enum(['anomaly', 'limit', 'silence']),
  active: z.boolean(),
  eventTs: finite,
  severity: z.enum(['info', 'warning', 'critical']),
  score: finite.optional(),
  threshold: finite.optional(),
  contributors: z.array(
    z.object({ metric: z.string(), feature: z.string(), value: finite, baseline: finite, ratio: finite, text: z.string() }),
  ),
  message: z.string(),
});

export interface LifecycleOptions {
  store: AlertStore;
  logger: Logger;
  metrics: AlertsMetrics;
  /** Fan-out to MQTT / InfluxDB / webhooks; must not throw. */
  publish: (t: AlertTransition) => void;
  now: () => number;
  updateNotifyIntervalMs: number;
  topContributors: number;
  /** Called after a manual resolve (the silence rule forgets the machine). */
  onManualResolve?: (alert: Alert) => void;
  /** Transition ids start above this (replay.ts `firstSeqAt`: the process start in microseconds). */
  firstSeq: number;
}

/**
 * Is (score, threshold) further beyond the threshold than the current peak?
 * Limits compare the relative distance outside the limit (a min limit is violated downwards);
 * anomaly and silence scores grow with badness, so the larger score wins.
 */
function isNewPeak(a: Alert, score: number, threshold: number | undefined): boolean {
  if (a.peakScore === null) return true;
  if (a.kind === 'limit' && threshold !== undefined && a.threshold !== null) {
    const rel = (s: number, t: number) => Math.abs(s - t) / Math.max(Math.abs(t), 1e-9);
    return rel(score, threshold) > rel(a.peakScore, a.threshold);
  }
  return score > a.peakScore;
}

function textOf(cs: Contributor[]): string {
  return cs.map((c) => c.text).join('; ');
}

export class AlertLifecycle {
  private seq: number;
  private readonly listeners = new Set<AlertListener>();
  /** Per active alert: when `updated` was last published and whether a throttled one is waiting. */
  private readonly throttle = new Map<string, { lastAt: number; pending: boolean }>();

  constructor(private readonly o: LifecycleOptions) {
    this.seq = o.firstSeq;
  }

  subscribe(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  private emit(event: AlertEventType, alert: Alert, at: number, reason?: AlertTransition['reason']): void {
    const t: AlertTransition = reason ? { seq: ++this.seq, event, at, reason, alert } : { seq: ++this.seq, event, at, alert };
    this.o.metrics.transitions.inc({ event, kind: alert.kind });
    if (event === 'resolved') this.throttle.delete(alert.id);
    else this.throttle.set(alert.id, { lastAt: this.o.now(), pending: false });
    this.o.publish(t);
    for (const l of this.listeners) {
      try {
        l(t);
      } catch (e) {
        this.o.logger.warn({ err: e, alert: alert.id }, 'alert listener failed');
      }
    }
  }

  onCondition(raw: ConditionEvent): void {
    const parsed = conditionSchema.safeParse(raw);
    if (!parsed.success) {
      this.o.metrics.conditionsIgnored.inc({ reason: 'invalid' });
      const issue = parsed.error.issues[0];
      this.o.logger.warn({ issue: issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid' }, 'ignored an invalid condition event');
      return;
    }
    const e = parsed.data;
    this.o.metrics.conditions.inc({ kind: e.kind, active: String(e.active) });
    const now = this.o.now();
    const existing = this.o.store.findActive(e.machine, e.kind);
    if (!e.active) {
      if (!existing) {
        this.o.metrics.conditionsIgnored.inc({ reason: 'clear_without_alert' });
        return;
      }
      const resolvedAt = Math.max(Math.round(e.eventTs), existing.startedAt);
      const a: Alert = {
        ...existing,
        state: 'resolved',
        resolvedAt,
        resolvedBy: null,
        resolveNote: e.message || null,
        resolution: 'auto',
        updatedAt: now,
      };
      this.o.store.update(a);
      this.emit('resolved', a, resolvedAt);
      return;
    }

    const contributors = e.contributors.slice(0, this.o.topContributors);
    if (!existing) {
      const startedAt = Math.round(e.eventTs);
      // A repeat of an episode someone already resolved (same start time) does not reopen it;
      // a new episode (new start time) does.
      if (this.o.store.hasResolvedEpisode(e.machine, e.kind, startedAt)) {
        this.o.metrics.conditionsIgnored.inc({ reason: 'resolved_episode' });
        return;
      }
      const a: Alert = {
        id: randomUUID(),
        machine: e.machine,
        kind: e.kind,
        severity: e.severity,
        state: 'open',
        message: e.message,
        startedAt,
        openedAt: now,
        updatedAt: now,
        score: e.score ?? null,
        peakScore: e.score ?? null,
        threshold: e.threshold ?? null,
        peakAt: e.score !== undefined ? now : null,
        contributors,
        contributorsText: textOf(contributors),
        updateCount: 0,
        acknowledgedAt: null,
        acknowledgedBy: null,
        ackNote: null,
        resolvedAt: null,
        resolvedBy: null,
        resolveNote: null,
        resolution: null,
      };
      this.o.store.insert(a);
      this.o.logger.info({ alert: a.id, machine: a.machine, kind: a.kind, severity: a.severity }, `alert opened: ${a.message}`);
      this.emit('opened', a, startedAt);
      return;
    }

    // Repeat: fold into the one active alert.
    const a: Alert = { ...existing, message: e.message, updatedAt: now, updateCount: existing.updateCount + 1 };
    let peak = false;
    if (e.score !== undefined) {
      a.score = e.score;
      if (isNewPeak(existing, e.score, e.threshold)) {
        peak = true;
        a.peakScore = e.score;
        a.threshold = e.threshold ?? existing.threshold;
        a.peakAt = now;
        if (contributors.length > 0) a.contributors = contributors;
      }
    }
    if (a.contributors.length === 0 && contributors.length > 0) a.contributors = contributors;
    // A channel the alert does not name leads the condition now (a second fault while the alert for the
    // first is still open): it goes first, the earlier ones stay after it.
    const known = new Set(a.contributors.map((c) => c.metric));
    const lead = contributors[0];
    const newChannel = lead !== undefined && !known.has(lead.metric);
    if (newChannel) a.contributors = [...contributors.filter((c) => !known.has(c.metric)), ...a.contributors].slice(0, this.o.topContributors);
    a.contributorsText = textOf(a.contributors);
    const escalated = severityRank(e.severity) > severityRank(existing.severity);
    if (escalated) a.severity = e.severity;
    this.o.store.update(a);
    // Publish an update at once on escalation or a newly named channel (each channel once per alert, so
    // this is bounded), otherwise only a higher peak, at most once per interval.
    const th = this.throttle.get(a.id) ?? { lastAt: -Infinity, pending: false };
    if (escalated) this.emit('updated', a, now, 'severity');
    else if (newChannel) this.emit('updated', a, now, 'contributors');
    else if (peak && now - th.lastAt >= this.o.updateNotifyIntervalMs) this.emit('updated', a, now, 'peak');
    else if (peak) this.throttle.set(a.id, { lastAt: th.lastAt, pending: true });
  }

  /** Publish throttled updates whose interval has passed. */
  tick(now: number): void {
    for (const [id, th] of this.throttle) {
      if (!th.pending || now - th.lastAt < this.o.updateNotifyIntervalMs) continue;
      const a = this.o.store.get(id);
      if (!a || a.state === 'resolved') {
        this.throttle.delete(id);
        continue;
      }
      this.emit('updated', a, now, 'peak');
    }
  }

  ack(id: string, by: { who: string; note?: string | undefined }): Alert {
    const cur = this.o.store.get(id);
    if (!cur) throw new AlertError('ALERT_NOT_FOUND', `alert "${id}" does not exist`);
    if (cur.state === 'resolved') throw new AlertError('ALERT_ALREADY_RESOLVED', `alert "${id}" is resolved and cannot be acknowledged`);
    if (cur.state === 'acknowledged') {
      throw new AlertError('ALERT_ALREADY_ACKNOWLEDGED', `alert "${id}" was already acknowledged by ${cur.acknowledgedBy ?? 'someone'}`);
    }
    const now = this.o.now();
    const a: Alert = { ...cur, state: 'acknowledged', acknowledgedAt: now, acknowledgedBy: by.who, ackNote: by.note ?? null, updatedAt: now };
    this.o.store.update(a);
    this.o.logger.info({ alert: id, who: by.who }, 'alert acknowledged');
    this.emit('acknowledged', a, now);
    return a;
  }

  resolve(id: string, by: { who?: string | undefined; note?: string | undefined }): Alert {
    const cur = this.o.store.get(id);
    if (!cur) throw new AlertError('ALERT_NOT_FOUND', `alert "${id}" does not exist`);
    if (cur.state === 'resolved') throw new AlertError('ALERT_ALREADY_RESOLVED', `alert "${id}" is already resolved`);
    const now = this.o.now();
    const a: Alert = {
      ...cur,
      state: 'resolved',
      resolvedAt: now,
      resolvedBy: by.who ?? null,
      resolveNote: by.note ?? null,
      resolution: 'manual',
      updatedAt: now,
    };
    this.o.store.update(a);
    this.o.logger.info({ alert: id, who: by.who }, 'alert resolved by hand');
    this.emit('resolved', a, now);
    this.o.onManualResolve?.(a);
    return a;
  }
}
