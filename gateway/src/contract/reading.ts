/**
 * The reading contract: what a machine publishes on `machines/<machineId>/telemetry`.
 *
 * single: {"ts": <epoch ms | ISO-8601>, "metrics": {"<name>": <finite number>, ...}, "seq"?: <int>}
 * batch:  {"readings": [<single>, ...]}
 *
 * This module is pure (no I/O) so the simulators, the ingest path and the tests share one definition.
 */
import { z } from 'zod';

/** machineId and metric names: letters, digits, `_`, `.`, `-`; 1 to 64 characters. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const TELEMETRY_TOPIC_PATTERN = /^machines\/([^/]+)\/telemetry$/;

/** A reading after validation: the shape every downstream module (outbox, sinks, windows) sees. */
export interface Reading {
  machine: string;
  /** Event time, epoch milliseconds (integer). */
  ts: number;
  /**
   * The metrics as own data properties (a metric called "__proto__" or "constructor" is one of
   * them). The object has Object.prototype, as JSON.parse made it (setting a null prototype cost 0.2-0.6 us
   * per reading, bench/README): consumers iterate own keys (for-in, Object.entries) and never read
   * a name they did not get from the object itself.
   */
  metrics: Record<string, number>;
  seq?: number;
  /** True when the publisher sent no `ts` and arrival time was used. */
  tsFromArrival?: boolean;
}

/** Reasons a message is rejected; stable strings, used as the `reason` label in /metrics. */
export const REJECT_REASONS = [
  'bad_topic',
  'bad_machine_id',
  'payload_too_large',
  'invalid_json',
  'invalid_schema',
  'bad_metric_name',
  'non_finite_value',
  'too_many_readings',
  'too_many_metrics',
  'empty_metrics',
  'bad_timestamp',
  'timestamp_in_future',
  'timestamp_too_old',
  'not_authorized',
  'too_many_machines',
  'outbox_full',
  'internal_error',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export interface ContractLimits {
  maxPayloadBytes: number;
  maxReadingsPerBatch: number;
  maxMetricsPerReading: number;
  /** A timestamp more than this many ms ahead of the gateway clock is rejected. */
  maxFutureSkewMs: number;
  /** A timestamp older than this many ms is rejected. */
  maxAgeMs: number;
}

export const DEFAULT_LIMITS: ContractLimits = {
  maxPayloadBytes: 256 * 1024,
  maxReadingsPerBatch: 1000,
  maxMetricsPerReading: 256,
  maxFutureSkewMs: 5 * 60 * 1000,
  maxAgeMs: 30 * 24 * 3600 * 1000,
};

export type ParseResult =
  | { ok: true; readings: Reading[] }
  | { ok: false; reason: RejectReason; detail: string };

// A string's content is checked by parseTs (bad_timestamp, naming the value); here only the JSON type.
const tsSchema = z.union([z.number().finite(), z.string()], {
  error: (iss) => `expected epoch milliseconds (a JSON number) or an ISO-8601 date-time string, got ${typeName(iss.input)}`,
});

/** What JSON.parse gives for a JSON object (the only kind of value `metrics` may be). */
function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when `key` is the object's one own enumerable key (a JSON.parse object inherits none). */
function onlyKey(obj: object, key: string): obj is Record<string, unknown> {
  let n = 0;
  for (const k in obj) if (k !== key || ++n > 1) return false;
  return n === 1;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/** One reading (exported for the property test that checks plainSingle against it). */
export const singleSchema = z
  .object({
    ts: tsSchema.optional(),
    // Checked for being an object only: names and values are checked below, on the parsed object
    // itself. z.record would copy every entry per reading (the largest allocation per message in
    // the gateway, bench/README "Allocations"); same message as z.record's.
    metrics: z.custom<Record<string, unknown>>(isJsonObject, { error: (iss) => `Invalid input: expected record, received ${typeName(iss.input)}` }),
    seq: z.number().int().optional(),
  })
  .strict();

const batchSchema = z.object({ readings: z.array(z.unknown()) }).strict();

const NUMBER_STRING = /^\s*[+-]?\d+(\.\d+)?([eE][+-]?\d+)?\s*$/;

// ISO-8601 with a date and time; Date.parse alone accepts too much (e.g. "1").
const ISO_RE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/;

function parseTs(raw: number | string): number | undefined {
  if (typeof raw === 'number') {
    // ECMAScript time values end at 8.64e15 ms (ECMA-262 21.4.1.1); beyond that no Date exists.
    if (!Number.isFinite(raw) || raw < 0 || raw > 8.64e15) return undefined;
    return Math.round(raw);
  }
  if (!ISO_RE.test(raw)) return undefined;
  const ms = Date.parse(raw);
  return Number.isFinite(ms) ? ms : undefined;
}

const TOPIC_PREFIX = 'machines/';
const TOPIC_SUFFIX = '/telemetry';

/**
 * A numeric ts out of range that would be in range in another unit: the commonest integration mistake
 * (a PLC or script sending epoch seconds, or a logger sending micro- or nanoseconds), said in the error.
 */
function unitHint(ts: number, now: number, limits: ContractLimits): string {
  const fits = (ms: number) => ms >= now - limits.maxAgeMs && ms <= now + limits.maxFutureSkewMs;
  if (fits(ts * 1000)) return ' (it looks like epoch seconds: send epoch milliseconds, i.e. seconds x 1000)';
  if (fits(ts / 1000)) return ' (it looks like epoch microseconds: send epoch milliseconds)';
  if (fits(ts / 1e6)) return ' (it looks like epoch nanoseconds: send epoch milliseconds)';
  return '';
}

/**
 * An ISO-8601 ts without a UTC offset is read in the gateway's time zone (ECMA-262 Date.parse, as
 * ISO 8601 leaves it to the parties): a device sending local time to a gateway running in UTC (the
 * container default) lands hours off. Said in the error, with the zone used.
 */
function zoneHint(raw: number | string): string {
  if (typeof raw !== 'string' || /(Z|[+-]\d{2}:?\d{2})$/i.test(raw) || !raw.includes(':')) return '';
  return ` (it has no UTC offset, so it was read in the gateway's time zone, ${Intl.DateTimeFormat().resolvedOptions().timeZone}: send Z or +hh:mm, or set the gateway's TZ)`;
}

export function parseTopic(topic: string): { ok: true; machine: string } | { ok: false; reason: RejectReason; detail: string } {
  // TELEMETRY_TOPIC_PATTERN by hand: the regex's match array was an allocation per message.
  const end = topic.length - TOPIC_SUFFIX.length;
  if (!(end > TOPIC_PREFIX.length && topic.startsWith(TOPIC_PREFIX) && topic.endsWith(TOPIC_SUFFIX) && topic.indexOf('/', TOPIC_PREFIX.length) === end)) {
    return { ok: false, reason: 'bad_topic', detail: `topic "${truncate(topic)}" is not machines/<machineId>/telemetry` };
  }
  const machine = topic.slice(TOPIC_PREFIX.length, end);
  if (!NAME_PATTERN.test(machine)) {
    return { ok: false, reason: 'bad_machine_id', detail: `machineId "${truncate(machine)}" must match [A-Za-z0-9_.-]{1,64}` };
  }
  return { ok: true, machine };
}

function truncate(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n)}...` : s;
}

function zodDetail(err: z.ZodError, prefix: string): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid payload';
  // `prefix` is a batch reading's `readings.<i>.`: without its dot here, or the path reads `readings.0..ts`.
  const path = [prefix.replace(/\.$/, ''), ...issue.path.map(String)].filter(Boolean).join('.');
  return `${path || '(root)'}: ${issue.message}`;
}

type SingleShape = z.output<typeof singleSchema>;

/**
 * singleSchema's verdict for the common case without running zod: `raw` when it is an object with no
 * keys but ts/metrics/seq, metrics a JSON object, ts absent, a finite number or a string, seq absent or
 * a safe integer; undefined otherwise (then zod decides, and names what is wrong). It accepts only
 * what singleSchema accepts, with the same values (zod passes each through uncopied): a property test
 * checks both on hostile and near-valid inputs (test/fuzz/parse-telemetry.test.ts). Why: zod's object
 * parse (result and payload objects, a copy of the object, the strict key walk) was ~5 % of the main
 * thread per reading with batch messages, plus its garbage (bench/README).
 */
export function plainSingle(raw: unknown): SingleShape | undefined {
  if (!isJsonObject(raw)) return undefined;
  // for-in: own keys of a JSON.parse object ("__proto__" included); it inherits nothing enumerable.
  let metricsSeen = false;
  for (const k in raw) {
    if (k === 'metrics') metricsSeen = true;
    else if (k !== 'ts' && k !== 'seq') return undefined;
  }
  if (!metricsSeen || !isJsonObject(raw.metrics)) return undefined;
  const ts = raw.ts;
  if (ts !== undefined && typeof ts !== 'string' && !(typeof ts === 'number' && Number.isFinite(ts))) return undefined;
  const seq = raw.seq;
  if (seq !== undefined && !(typeof seq === 'number' && Number.isSafeInteger(seq))) return undefined;
  return raw as SingleShape;
}

/**
 * Metric names already checked against NAME_PATTERN: a fleet uses a few dozen names, and the regex per
 * metric per reading was ~1.5 % of the main thread (bench/README). Bounded: cleared when full.
 */
const knownNames = new Set<string>();
const KNOWN_NAMES_MAX = 4096;

function validName(name: string): boolean {
  if (knownNames.has(name)) return true;
  if (!NAME_PATTERN.test(name)) return false;
  if (knownNames.size >= KNOWN_NAMES_MAX) knownNames.clear();
  knownNames.add(name);
  return true;
}

function parseSingle(
  raw: unknown,
  machine: string,
  now: number,
  limits: ContractLimits,
  where: string,
): { ok: true; reading: Reading } | { ok: false; reason: RejectReason; detail: string } {
  let data = plainSingle(raw);
  if (data === undefined) {
    const r = singleSchema.safeParse(raw);
    if (!r.success) return { ok: false, reason: 'invalid_schema', detail: zodDetail(r.error, where) };
    data = r.data;
  }
  // The parsed JSON object itself (zod passes it through uncopied): JSON.parse makes every key an
  // own data property, "__proto__" included, so none is lost; no copy per reading.
  const metrics = data.metrics;
  // for-in also walks the prototype chain; JSON.parse's objects inherit nothing enumerable.
  let count = 0;
  for (const _ in metrics) count++;
  if (count === 0) return { ok: false, reason: 'empty_metrics', detail: `${where}metrics: at least one metric is required` };
  if (count > limits.maxMetricsPerReading) {
    return { ok: false, reason: 'too_many_metrics', detail: `${where}metrics: ${count} metrics, limit is ${limits.maxMetricsPerReading}` };
  }
  for (const name in metrics) {
    if (!validName(name)) {
      return { ok: false, reason: 'bad_metric_name', detail: `${where}metrics: name "${truncate(name)}" must match [A-Za-z0-9_.-]{1,64}` };
    }
    const value = metrics[name];
    if (typeof value !== 'number') {
      return { ok: false, reason: 'invalid_schema', detail: `${where}metrics.${name}: expected a number, got ${value === null ? 'null' : typeof value}` };
    }
    if (!Number.isFinite(value)) {
      return { ok: false, reason: 'non_finite_value', detail: `${where}metrics.${name}: value must be finite` };
    }
  }
  let ts: number;
  let tsFromArrival = false;
  if (data.ts === undefined) {
    ts = now;
    tsFromArrival = true;
  } else {
    const parsed = parseTs(data.ts);
    if (parsed === undefined) {
      const raw = data.ts;
      // Epoch milliseconds written as a string ("1767225600000"): a common serialiser habit, said plainly.
      const digits = typeof raw === 'string' && NUMBER_STRING.test(raw);
      const hint = digits ? ' (a number in a string: send it as a JSON number)' : typeof raw === 'number' ? unitHint(raw, now, limits) : '';
      const shown = typeof raw === 'string' ? `"${truncate(raw, 40)}"` : String(raw);
      return { ok: false, reason: 'bad_timestamp', detail: `${where}ts: ${shown} is not epoch milliseconds or an ISO-8601 date-time${hint}` };
    }
    if (parsed > now + limits.maxFutureSkewMs) {
      return { ok: false, reason: 'timestamp_in_future', detail: `${where}ts: ${new Date(parsed).toISOString()} is more than ${limits.maxFutureSkewMs} ms ahead of the gateway clock${typeof data.ts === 'string' ? zoneHint(data.ts) : unitHint(parsed, now, limits)}` };
    }
    if (parsed < now - limits.maxAgeMs) {
      return { ok: false, reason: 'timestamp_too_old', detail: `${where}ts: ${new Date(parsed).toISOString()} is older than ${limits.maxAgeMs} ms${typeof data.ts === 'string' ? zoneHint(data.ts) : unitHint(parsed, now, limits)}` };
    }
    ts = parsed;
  }
  const reading: Reading = { machine, ts, metrics: metrics as Record<string, number> };
  if (data.seq !== undefined) reading.seq = data.seq;
  if (tsFromArrival) reading.tsFromArrival = true;
  return { ok: true, reading };
}

/**
 * Validate one MQTT message. A batch is all-or-nothing: one bad reading rejects the message,
 * so a publisher never has to guess which part of its batch was stored.
 */
export function parseTelemetry(
  topic: string,
  payload: Buffer | Uint8Array | string,
  now: number,
  limits: ContractLimits = DEFAULT_LIMITS,
): ParseResult {
  const t = parseTopic(topic);
  if (!t.ok) return t;
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > limits.maxPayloadBytes) {
    return { ok: false, reason: 'payload_too_large', detail: `payload is ${size} bytes, limit is ${limits.maxPayloadBytes}` };
  }
  if (size === 0) return { ok: false, reason: 'invalid_json', detail: 'payload is empty (0 bytes): send one JSON reading or a batch' };
  let json: unknown;
  try {
    // Decoded in place (Buffer.from(buffer) would copy the payload first).
    let text =
      typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
    // A UTF-8 byte order mark (some Windows/.NET writers add one): RFC 8259 section 8.1 lets a parser
    // ignore it, and JSON.parse would refuse it.
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: 'invalid_json', detail: `payload is not JSON: ${(e as Error).message}` };
  }
  if (json !== null && typeof json === 'object' && !Array.isArray(json) && 'readings' in json) {
    // batchSchema's verdict without zod's copy of the array when the object has the one key (plainSingle's reasoning).
    let list = onlyKey(json, 'readings') && Array.isArray(json.readings) ? (json.readings as unknown[]) : undefined;
    if (list === undefined) {
      const b = batchSchema.safeParse(json);
      if (!b.success) return { ok: false, reason: 'invalid_schema', detail: zodDetail(b.error, '') };
      list = b.data.readings;
    }
    if (list.length === 0) return { ok: false, reason: 'invalid_schema', detail: 'readings: batch is empty' };
    if (list.length > limits.maxReadingsPerBatch) {
      return { ok: false, reason: 'too_many_readings', detail: `readings: ${list.length} readings, limit is ${limits.maxReadingsPerBatch}` };
    }
    const readings: Reading[] = [];
    for (let i = 0; i < list.length; i++) {
      const one = parseSingle(list[i], t.machine, now, limits, `readings.${i}.`);
      if (!one.ok) return one;
      readings.push(one.reading);
    }
    return { ok: true, readings };
  }
  const one = parseSingle(json, t.machine, now, limits, '');
  if (!one.ok) return one;
  return { ok: true, readings: [one.reading] };
}

/** Topic a machine's telemetry is published on. */
export function telemetryTopic(machine: string): string {
  return `machines/${machine}/telemetry`;
}
/** Topic the gateway publishes a machine's alerts on. */
export function alertsTopic(machine: string): string {
  return `machines/${machine}/alerts`;
}
