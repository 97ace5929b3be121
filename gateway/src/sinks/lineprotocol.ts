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

/** A reading as a `telemetry` point (ms precision): tag machine (+ registry tags), one float field per metric. */
export function readingToLine(r: Reading, extraTags?: ExtraTags): string {
  return formatPoint('telemetry', { ...extraTags, machine: r.machine }, r.metrics, r.ts);
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
        key = escapeFieldKey(name);
        if (this.keys.size >= MAX_CACHED) this.keys.clear();
        this.keys.set(name, key);
      }
      fields += fields === '' ? `${key}=${String(v)}` : `,${key}=${String(v)}`;
    }
    if (fields === '') throw new RangeError('point for telemetry has no fields');
    return `${prefix} ${fields} ${Math.trunc(r.ts)}`;
  }
}
