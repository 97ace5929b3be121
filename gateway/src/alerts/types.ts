/**
 * Alert domain types, the AlertStore interface and the AlertEngine interface.
 * Times are epoch milliseconds (integers) everywhere, like the reading contract.
 */
import type { ConditionEvent, ConditionKind, Contributor, Severity } from '../contract/detection.js';
import type { Reading } from '../contract/reading.js';
import { GatewayError } from '../errors.js';
import type { LoggedTransition } from './replay.js';

export type { ConditionKind, Contributor, Severity };

export const ALERT_STATES = ['open', 'acknowledged', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export const ALERT_EVENTS = ['opened', 'updated', 'acknowledged', 'resolved'] as const;
export type AlertEventType = (typeof ALERT_EVENTS)[number];

export const CONDITION_KINDS = ['anomaly', 'limit', 'silence'] as const satisfies readonly ConditionKind[];

export interface Alert {
  /** Stable id (UUID). */
  id: string;
  machine: string;
  kind: ConditionKind;
  /** Highest severity seen while the alert was active (an alert escalates, it never de-escalates). */
  severity: Severity;
  state: AlertState;
  /** Latest one-sentence description from the condition. */
  message: string;
  /** Event time when the condition started (from ConditionEvent.eventTs). */
  startedAt: number;
  /** Gateway clock when the alert was opened. */
  openedAt: number;
  /** Gateway clock of the last change of any field. */
  updatedAt: number;
  /** Latest score reported by the condition (null when the condition has no score). */
  score: number | null;
  /** Score furthest beyond its threshold while active, and the threshold it was compared with. */
  peakScore: number | null;
  threshold: number | null;
  /** Gateway clock when the peak was recorded. */
  peakAt: number | null;
  /** Top contributors at the peak (or the latest ones while no peak is known). */
  contributors: Contributor[];
  /** Contributor texts joined by "; " (what InfluxDB and plain-text consumers get). */
  contributorsText: string;
  /** Number of repeats of the condition folded into this alert. */
  updateCount: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  ackNote: string | null;
  /** Event time of the clear (auto) or gateway clock (manual). */
  resolvedAt: number | null;
  /** Who resolved it; null for auto-resolve. */
  resolvedBy: string | null;
  resolveNote: string | null;
  resolution: 'auto' | 'manual' | null;
}

/** One lifecycle transition, as published on MQTT, webhooks and the SSE stream. */
export interface AlertTransition {
  /**
   * Increasing sequence number, one per transition (the SSE event id): it starts at the process's start
   * time in microseconds, so ids keep increasing across restarts and a receiver can tell them apart.
   */
  seq: number;
  event: AlertEventType;
  /** Time of the transition: the condition's event time for opened/auto-resolved, the gateway clock otherwise. */
  at: number;
  /** For `updated`: what changed enough to publish (a higher peak, a higher severity, or a channel the alert did not name leads it now). */
  reason?: 'peak' | 'severity' | 'contributors';
  alert: Alert;
}

export interface AlertQuery {
  machine?: string;
  /** `active` means open or acknowledged. */
  state?: AlertState | 'active';
  kind?: ConditionKind;
  severity?: Severity;
  /** startedAt >= from (epoch ms). */
  from?: number;
  /** startedAt < to (epoch ms). */
  to?: number;
  /** Page size (1..500). */
  limit: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor?: string;
}

export interface AlertPage {
  alerts: Alert[];
  /** Pass as `cursor` to get the next (older) page; null on the last page. */
  nextCursor: string | null;
}

/**
 * Durable alert storage. Synchronous on purpose: every lifecycle step is one short SQLite
 * transaction, so the engine never interleaves two updates of the same alert.
 *
 * Invariants the store enforces (not only the engine):
 * - at most one alert with state open|acknowledged per (machine, kind) (unique partial index);
 *   `insert` throws AlertError code ALERT_CONFLICT if one exists.
 * - `list` returns newest first by (startedAt, insertion order), keyset-paginated by an opaque cursor;
 *   a malformed cursor throws AlertError code BAD_CURSOR.
 */
export interface AlertStore {
  insert(alert: Alert): void;
  /** Replace all mutable fields of the alert with this id (throws ALERT_NOT_FOUND if absent). */
  update(alert: Alert): void;
  get(id: string): Alert | undefined;
  /** The open or acknowledged alert of (machine, kind), if any. */
  findActive(machine: string, kind: ConditionKind): Alert | undefined;
  /** All open or acknowledged alerts. */
  listActive(): Alert[];
  /** True when a resolved alert of (machine, kind) started at exactly `startedAt` (same condition episode). */
  hasResolvedEpisode(machine: string, kind: ConditionKind, startedAt: number): boolean;
  list(query: AlertQuery): AlertPage;
  /** Number of open and acknowledged alerts, by kind and severity. */
  countActive(): Array<{ kind: ConditionKind; severity: Severity; state: AlertState; count: number }>;
  /** Delete resolved alerts with resolvedAt < before; returns how many. */
  pruneResolved(before: number): number;
  /** Last-seen gateway-clock times of machines (used by the silence rule across restarts). */
  loadLastSeen(): Map<string, number>;
  saveLastSeen(entries: Iterable<[string, number]>): void;
  /** Stop remembering a machine (its silence alert was resolved by hand: it was decommissioned or moved). */
  forgetLastSeen(machine: string): void;
  close(): void;
}

export type AlertErrorCode =
  | 'ALERT_NOT_FOUND'
  | 'ALERT_ALREADY_ACKNOWLEDGED'
  | 'ALERT_ALREADY_RESOLVED'
  | 'ALERT_CONFLICT'
  | 'BAD_CURSOR'
  | 'BAD_REQUEST'
  | 'TOO_MANY_STREAMS'
  | 'ALERTS_CLOSED';

const STATUS: Record<AlertErrorCode, number> = {
  ALERT_NOT_FOUND: 404,
  ALERT_ALREADY_ACKNOWLEDGED: 409,
  ALERT_ALREADY_RESOLVED: 409,
  ALERT_CONFLICT: 409,
  BAD_CURSOR: 400,
  BAD_REQUEST: 400,
  TOO_MANY_STREAMS: 503,
  ALERTS_CLOSED: 503,
};

/** Error with a stable code and an HTTP status (fastify uses `statusCode`). */
export class AlertError extends GatewayError {
  declare readonly code: AlertErrorCode;
  constructor(code: AlertErrorCode, message: string) {
    super(code, message, STATUS[code]);
    this.name = 'AlertError';
  }
}

export type AlertListener = (t: AlertTransition) => void;

export interface StreamHooks {
  maxClients: number;
  heartbeatMs: number;
  /** Bookkeeping for metrics: a client connected / disconnected / was refused or cut off. */
  opened(): void;
  closed(): void;
  rejected(reason: 'too_many' | 'slow_client'): void;
  /** Transitions after an event id, for a reconnecting client; undefined when some may be missing (replay.ts). */
  since(lastId: number): LoggedTransition[] | undefined;
  /** Id of the newest transition (a fresh stream starts from it). */
  newest(): number;
}

/** What `createAlerts` returns; main.ts feeds it and the HTTP routes read it. */
export interface AlertEngine {
  /** Open, update or clear the alert of (e.machine, e.kind). Never throws (errors are logged and counted). */
  onCondition(e: ConditionEvent): void;
  /** Feed validated readings to the limit and silence rules. Never throws. */
  onReadings(readings: Reading[]): void;
  /** Call about once a second: silence checks, throttled `updated` notifications, retention. Never throws. */
  tick(now?: number): void;
  list(query: AlertQuery): AlertPage;
  get(id: string): Alert | undefined;
  /** open -> acknowledged. Throws AlertError (ALERT_NOT_FOUND, ALERT_ALREADY_ACKNOWLEDGED, ALERT_ALREADY_RESOLVED). */
  ack(id: string, by: { who: string; note?: string | undefined }): Alert;
  /** open|acknowledged -> resolved (manual). Throws AlertError (ALERT_NOT_FOUND, ALERT_ALREADY_RESOLVED). */
  resolve(id: string, by: { who?: string | undefined; note?: string | undefined }): Alert;
  /** Listen to every transition (the same ones that are published); returns the unsubscribe function. */
  subscribe(listener: AlertListener): () => void;
  /** Open plus acknowledged alerts. */
  openCount(): number;
  /** Machines with at least one open or acknowledged alert (for status tiles: however many alerts are open). */
  machinesWithActive(): Set<string>;
  /** Settings and bookkeeping hooks of the SSE route (`GET /api/v1/alerts/stream`). */
  readonly stream: StreamHooks;
  /** Flush state, stop webhooks (undelivered transitions are counted as dropped), close the database. */
  close(): Promise<void>;
}
