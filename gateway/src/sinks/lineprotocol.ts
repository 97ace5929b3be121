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
