/**
 * InfluxDB line protocol encoding.
 *
 * Escaping rules (InfluxDB line protocol reference, "Special characters"):
 * - measurement: escape comma and space;
 * - tag keys, tag values, field keys: escape comma, equals sign and space;
 * - string field values: wrap in double quotes, escape double quote and backslash.
 * Line protocol cannot carry a newline in any of these, so CR/LF are replaced by a space
 * (documented; names from the reading contract can never contain them anyway).
 */
import type { Reading } from '../contract/reading.js';

const NEWLINES = /[\r\n]/g;

export function escapeMeasurement(s: string): string {
  return s.replace(NEWLINES, ' ').replace(/[, ]/g, (c) => `\\${c}`);
}

export function escapeTag(s: string): string {
  return s.replace(NEWLINES, ' ').replace(/[,= ]/g, (c) => `\\${c}`);
}

/** Field keys follow the tag rules. */
export const escapeFieldKey = escapeTag;

export function formatStringField(s: string): string {
  return `"${s.replace(NEWLINES, ' ').replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Floats are written without the `i` suffix so a metric never changes field type between points. */
export function formatFloat(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError('line protocol cannot carry NaN or Infinity');
  return String(n);
}

export function formatInt(n: number): string {
  return `${Math.trunc(n)}i`;
}

export type FieldValue = number | string | boolean | { int: number };

/** One point. Tags with an empty value are omitted: line protocol does not allow empty tag values. */
export function formatPoint(
  measurement: string,
  tags: Record<string, string | undefined>,
  fields: Record<string, FieldValue | undefined>,
  tsMs: number,
): string {
  let line = escapeMeasurement(measurement);
  // Tags sorted by key: InfluxDB's recommended order, which makes series keys canonical.
  for (const key of Object.keys(tags).sort()) {
    const v = tags[key];
    if (v === undefined || v === '') continue;
    line += `,${escapeTag(key)}=${escapeTag(v)}`;
  }
  const parts: string[] = [];
  for (const [key, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    let enc: string;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) continue;
      enc = formatFloat(v);
    } else if (typeof v === 'string') enc = formatStringField(v);
    else if (typeof v === 'boolean') enc = v ? 'true' : 'false';
    else enc = formatInt(v.int);
    parts.push(`${escapeFieldKey(key)}=${enc}`);
  }
  if (parts.length === 0) throw new RangeError(`point for ${measurement} has no fields`);
  return `${line} ${parts.join(',')} ${Math.trunc(tsMs)}`;
}

/** Tags a reading carries besides `machine` (from the machine registry). */
export type ExtraTags = Record<string, string | undefined>;

/** Tag keys of the `telemetry` measurement: `machine` and the machine registry's (config `machines`). */
export const TELEMETRY_TAG_KEYS: readonly string[] = ['machine', 'site', 'line', 'kind'];

/**
 * Metric names InfluxDB cannot keep as a field of `telemetry` under their own name: `time` (InfluxDB
 * 1.x drops such a field without an error, or refuses the point when it is the only field: "invalid
 * field name"), the measurement's tag keys (a field named like a tag makes InfluxQL's
 * `WHERE "machine" = ...` compare the field, so the machine's points vanish from queries), and the
 * keys InfluxDB 2.x reserves (`_field`, `_measurement`; line protocol reference, "Naming restrictions").
 */
const RESERVED_FIELD_KEYS: ReadonlySet<string> = new Set(['time', '_field', '_measurement', ...TELEMETRY_TAG_KEYS]);

/**
 * The field key a metric is stored under: its own name, or for a reserved name the name with `_`
 * appended (more than one while that is another metric of the same reading, so nothing is overwritten).
 */
export function telemetryFieldKey(name: string, metrics: Readonly<Record<string, number>>): string {
  if (!RESERVED_FIELD_KEYS.has(name)) return name;
  let key = `${name}_`;
  while (Object.hasOwn(metrics, key)) key += '_';
  return key;
}

/** Back from a stored field key to the metric name (`time_` -> `time`); other keys are the name. */
export function metricOfFieldKey(key: string): string {
  return key.endsWith('_') && RESERVED_FIELD_KEYS.has(key.slice(0, -1)) ? key.slice(0, -1) : key;
}

/** The reading's metrics under their stored field keys (see telemetryFieldKey). */
function telemetryFields(metrics: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name in metrics) out[telemetryFieldKey(name, metrics)] = metrics[name] as number;
  return out;
}

/** A reading as a `telemetry` point (ms precision): tag machine (+ registry tags), one float field per metric. */
export function readingToLine(r: Reading, extraTags?: ExtraTags): string {
  return formatPoint('telemetry', { ...extraTags, machine: r.machine }, telemetryFields(r.metrics), r.ts);
}

/** Most series prefixes / field keys kept by TelemetryLines before it starts over (machine ids come from devices). */
const MAX_CACHED = 10_000;

/**
 * `readingToLine` for a stream of readings, with the escaped series prefix
 * (`telemetry,<sorted tags>,machine=<id>`) and escaped field keys cached: tags come from the
 * configured registry, which does not change while the gateway runs, and re-sorting and escaping
 * them for every reading was a visible share of the forwarder's time. Same output as readingToLine.
 */
export class TelemetryLines {
  private readonly prefixes = new Map<string, string>();
  private readonly keys = new Map<string, string>();

  constructor(private readonly tagsFor: (machine: string) => ExtraTags | undefined) {}

  line(r: Reading): string {
    let prefix = this.prefixes.get(r.machine);
    if (prefix === undefined) {
      // formatPoint's own tag encoding, with a placeholder field cut off again.
      const sample = formatPoint('telemetry', { ...this.tagsFor(r.machine), machine: r.machine }, { x: 0 }, 0);
      prefix = sample.slice(0, sample.length - ' x=0 0'.length);
      if (this.prefixes.size >= MAX_CACHED) this.prefixes.clear();
      this.prefixes.set(r.machine, prefix);
    }
    let fields = '';
    for (const name in r.metrics) {
      const v = r.metrics[name] as number;
      if (!Number.isFinite(v)) continue;
      let key = this.keys.get(name);
      if (key === undefined) {
        // '': a reserved name, whose key depends on the reading's other metrics (rare: not cached).
        key = RESERVED_FIELD_KEYS.has(name) ? '' : escapeFieldKey(name);
        if (this.keys.size >= MAX_CACHED) this.keys.clear();
        this.keys.set(name, key);
      }
      if (key === '') key = escapeFieldKey(telemetryFieldKey(name, r.metrics));
      fields += fields === '' ? `${key}=${String(v)}` : `,${key}=${String(v)}`;
    }
    if (fields === '') throw new RangeError('point for telemetry has no fields');
    return `${prefix} ${fields} ${Math.trunc(r.ts)}`;
  }
}
