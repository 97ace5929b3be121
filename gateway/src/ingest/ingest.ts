/**
 * Ingest: topic + payload validation, then a durable append to the outbox. The broker calls
 * `handle` from aedes' authorizePublish hook, so the PUBACK is written only after this resolves
 * (aedes lib/handlers/publish.js acks after authorizePublish calls back).
 */
import type { Logger } from 'pino';
import { parseTelemetry, type ContractLimits, type Reading, type RejectReason } from '../contract/reading.js';
import { GatewayError, ErrorCodes } from '../errors.js';
import { RateLimitedLog } from '../obs/logger.js';
import type { CoreMetrics } from '../obs/metrics.js';
import type { RejectLog } from './rejects.js';

/** Where accepted readings go durably (the outbox). */
export interface DurableAppend {
  append(readings: Reading[]): Promise<void>;
  /** The same with a callback (called once; null = committed): no promise per message. The outbox has it. */
  appendThen?(readings: Reading[], done: (err: Error | null) => void): void;
}

export type IngestResult =
  | { status: 'accepted'; count: number }
  | { status: 'rejected'; reason: RejectReason; detail: string }
  /** Outbox full or closing: the publisher must not get an ack; the broker disconnects it. */
  | { status: 'unavailable'; detail: string; count: number };

export interface IngestDeps {
  limits: ContractLimits;
  outbox: DurableAppend;
  rejects: RejectLog;
  metrics: CoreMetrics;
  logger: Logger;
  rejectLogIntervalMs: number;
  /** Called after a durable append, before the ack, for in-memory consumers (registry, detection). */
  onAccepted: (readings: Reading[]) => void;
  /** Most distinct machine ids taken (ingest.maxMachines); unset = no limit. */
  maxMachines?: number;
  /** Machine ids known from before (the registry's, after a restart): they count and stay admitted. */
  knownMachines?: Iterable<string>;
  now?: () => number;
}

const MAX_DETAIL_CHARS = 300;

export class Ingest {
  private readonly rlog: RateLimitedLog;
  /** Machine ids admitted so far (bounded by maxMachines). */
  private readonly machines: Set<string>;
  constructor(private readonly deps: IngestDeps) {
    this.rlog = new RateLimitedLog(deps.logger, deps.rejectLogIntervalMs);
    this.machines = new Set(deps.knownMachines ?? []);
  }

  /** Largest payload ingest accepts; the broker sizes its packet limit from it. */
  get maxPayloadBytes(): number {
    return this.deps.limits.maxPayloadBytes;
  }

  /**
   * Count, keep and (rate-limited) log a refused message. `payloadBytes` is for messages refused
   * before their payload was read (the broker's packet-size guard passes an empty buffer).
   */
  reject(topic: string, payload: Buffer, clientId: string | null, reason: RejectReason, detail: string, payloadBytes = payload.byteLength): IngestResult {
    this.deps.metrics.messagesRejected.inc({ reason });
    const shortDetail = this.keep(topic, payload, clientId, reason, detail, payloadBytes);
    this.rlog.warn(reason, { reason, topic: topic.slice(0, 256), clientId, detail: shortDetail }, 'telemetry message rejected');
    return { status: 'rejected', reason, detail: shortDetail };
  }

  /** Keep a refusal for GET /api/v1/rejects; returns the detail as kept. */
  private keep(topic: string, payload: Buffer, clientId: string | null, reason: RejectReason, detail: string, payloadBytes = payload.byteLength): string {
    // Bounded: details quote publisher input (e.g. an unknown key name), and the last
    // ingest.rejectsKept of them stay in memory.
    const shortDetail = detail.length > MAX_DETAIL_CHARS ? `${detail.slice(0, MAX_DETAIL_CHARS)}...` : detail;
    const preview = payload.subarray(0, 200).toString('utf8');
    this.deps.rejects.add({ at: Date.now(), reason, detail: shortDetail, topic: topic.slice(0, 256), clientId, payloadPreview: preview, payloadBytes });
    return shortDetail;
  }

  // prom-client resolves labels on every inc(); bound children skip that on the per-message path.
  private readonly received = new Map<string, { inc(): void }>();
  private receivedCounter(transport: string): { inc(): void } {
    let c = this.received.get(transport);
    if (!c) {
      c = this.deps.metrics.messagesReceived.labels(transport);
      this.received.set(transport, c);
    }
    return c;
  }

  handle(topic: string, payload: Buffer, clientId: string | null, transport = 'mqtt'): Promise<IngestResult> {
    return new Promise((resolve) => this.submit(topic, payload, clientId, resolve, transport));
  }

  /**
   * `handle` with a callback, called exactly once with the outcome (never throws): the broker's
   * per-message path, without an async function and its promises per message.
   */
  submit(topic: string, payload: Buffer, clientId: string | null, done: (r: IngestResult) => void, transport = 'mqtt'): void {
    const d = this.deps;
    this.receivedCounter(transport).inc();
    const now = d.now ? d.now() : Date.now();
    let parsed: ReturnType<typeof parseTelemetry>;
    try {
      parsed = parseTelemetry(topic, payload, now, d.limits);
    } catch (e) {
      // The validator must never throw; if it does (a bug), the message is refused and counted
      // like any other instead of failing the publisher's connection.
      return done(this.reject(topic, payload, clientId, 'internal_error', `validator failed: ${(e as Error).message}`));
    }
    if (!parsed.ok) return done(this.reject(topic, payload, clientId, parsed.reason, parsed.detail));
    const readings = parsed.readings;
    // One message is one machine's (its topic).
    const machine = (readings[0] as Reading).machine;
    if (!this.machines.has(machine)) {
      const max = d.maxMachines ?? Number.POSITIVE_INFINITY;
      if (this.machines.size >= max) {
        return done(this.reject(topic, payload, clientId, 'too_many_machines', `machineId "${machine}" is new and the gateway already takes readings from ${this.machines.size} machines (ingest.maxMachines ${max}): check the device's id, or raise the limit`));
      }
      this.machines.add(machine);
    }
    const stored = (e: Error | null): void => {
      if (e) return done(this.unavailable(e, topic, payload, clientId, readings.length));
      done(this.accepted(readings));
    };
    const outbox = d.outbox;
    if (outbox.appendThen) outbox.appendThen(readings, stored);
    else outbox.append(readings).then(() => stored(null), (e: unknown) => stored(e as Error));
  }

  private unavailable(e: Error, topic: string, payload: Buffer, clientId: string | null, count: number): IngestResult {
    const err = e as GatewayError;
    const reason: RejectReason = err.code === ErrorCodes.OUTBOX_FULL ? 'outbox_full' : 'internal_error';
    this.deps.metrics.messagesRejected.inc({ reason });
    // Listed like any refusal, so GET /api/v1/rejects shows why a publisher was not acknowledged.
    this.keep(topic, payload, clientId, reason, `not stored, not acknowledged (a QoS 1/2 publisher sends it again; a QoS 0 message is lost, counted in smartops_readings_dropped_total): ${err.message}`);
    this.rlog.warn(`append:${reason}`, { reason, topic, clientId, error: err.message }, 'telemetry not stored: publisher will not be acknowledged');
    return { status: 'unavailable', detail: err.message, count };
  }

  private accepted(readings: Reading[]): IngestResult {
    const d = this.deps;
    d.metrics.readingsAccepted.inc(readings.length);
    let fromArrival = 0;
    for (const r of readings) if (r.tsFromArrival) fromArrival++;
    if (fromArrival) d.metrics.readingsTsFromArrival.inc(fromArrival);
    try {
      d.onAccepted(readings);
    } catch (e) {
      // Downstream in-memory consumers must never undo a durable accept.
      this.rlog.warn('onAccepted', { error: (e as Error).message }, 'reading consumer failed');
    }
    return { status: 'accepted', count: readings.length };
  }
}
