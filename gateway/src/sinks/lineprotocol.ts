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

/** A reserved name followed by zero or more `_` (`time`, `time_`, `machine__`...). */
function hasReservedStem(name: string): boolean {
  let end = name.length;
  while (end > 0 && name.charCodeAt(end - 1) === 0x5f) end--;
  return RESERVED_FIELD_KEYS.has(name.slice(0, end));
}

/**
 * The field key a metric is stored under: its own name, or one more `_` for a reserved name and for
 * any name that is a reserved name followed by `_`s (`time` -> `time_`, `time_` -> `time__`). So the
 * mapping is one-to-one and the same in every reading: metricOfFieldKey takes exactly one `_` back
 * off, and no two metrics of a reading can land on one key.
 */
export function telemetryFieldKey(name: string): string {
  return hasReservedStem(name) ? `${name}_` : name;
}

/** Back from a stored field key to the metric name (`time_` -> `time`, `time__` -> `time_`); other keys are the name. */
export function metricOfFieldKey(key: string): string {
  return key.endsWith('_') && hasReservedStem(key.slice(0, -1)) ? key.slice(0, -1) : key;
}

/** The reading's metrics under their stored field keys (see telemetryFieldKey). */
function telemetryFields(metrics: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name in metrics) out[telemetryFieldKey(name)] = metrics[name] as number;
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
  /** Per machine: the series prefix's UTF-8 bytes, followed by the space before the fields. */
  private readonly prefixes = new Map<string, Buffer>();
  /** Per metric name: the escaped field key's UTF-8 bytes, followed by `=`. */
  private readonly keys = new Map<string, Buffer>();

  /** Bytes per line of the last batch plus a margin: sizes the next buffer so it rarely has to grow. */
  private lineBytes = 96;

  constructor(private readonly tagsFor: (machine: string) => ExtraTags | undefined) {}

  private prefix(machine: string): Buffer {
    let p = this.prefixes.get(machine);
    if (p === undefined) {
      // formatPoint's own tag encoding, with the placeholder field cut off again (the space stays).
      const sample = formatPoint('telemetry', { ...this.tagsFor(machine), machine }, { x: 0 }, 0);
      p = Buffer.from(sample.slice(0, sample.length - 'x=0 0'.length));
      if (this.prefixes.size >= MAX_CACHED) this.prefixes.clear();
      this.prefixes.set(machine, p);
    }
    return p;
  }

  private key(name: string): Buffer {
    let k = this.keys.get(name);
    if (k === undefined) {
      k = Buffer.from(`${escapeFieldKey(telemetryFieldKey(name))}=`);
      if (this.keys.size >= MAX_CACHED) this.keys.clear();
      this.keys.set(name, k);
    }
    return k;
  }

  /**
   * The request body for a batch: exactly the UTF-8 bytes of `readings.map(line).join('\n')`, written
   * straight into one buffer. Why: with a string per line, a batch of 10,000 lines lived through the
   * young generation's collections while the batch was built and written, so V8 copied and promoted
   * it, then marked and swept it in the old generation (bench/README "Line protocol in one buffer"); a buffer is one
   * off-heap allocation, and the HTTP client sends it without encoding it again.
   */
  encode(readings: readonly Reading[]): Buffer {
    const out = new ByteWriter(readings.length * this.lineBytes);
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i] as Reading;
      if (i > 0) out.byte(NEWLINE);
      out.bytes(this.prefix(r.machine));
      let first = true;
      for (const name in r.metrics) {
        const v = r.metrics[name] as number;
        if (!Number.isFinite(v)) continue;
        if (!first) out.byte(COMMA);
        first = false;
        out.bytes(this.key(name));
        if (Number.isInteger(v)) out.int(v);
        else if (!out.decimal(v)) out.ascii(String(v));
      }
      if (first) throw new RangeError('point for telemetry has no fields');
      out.byte(SPACE);
      out.int(Math.trunc(r.ts));
    }
    const body = out.done();
    this.lineBytes = Math.min(4096, Math.ceil(body.length / readings.length) + 8);
    return body;
  }
}

const NEWLINE = 0x0a;
const COMMA = 0x2c;
const SPACE = 0x20;
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000];

/** An append-only byte buffer that doubles when full. */
class ByteWriter {
  private buf: Buffer;
  private at = 0;

  constructor(initial: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, initial));
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.at++] = b;
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.at);
    this.at += b.length;
  }

  /** A string of ASCII characters only (a number's decimal form): one byte per character. */
  ascii(s: string): void {
    this.room(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.at++] = s.charCodeAt(i);
  }

  /**
   * An integer's decimal digits, as String(n) writes them, without making a string: String() puts
   * every number it converts in V8's number-to-string cache, an old-generation table, so each
   * timestamp's string outlived the young generation's collections.
   */
  int(n: number): void {
    if (!(Math.abs(n) < 2 ** 53)) {
      this.ascii(String(n));
      return;
    }
    if (n < 0) {
      this.byte(0x2d);
      n = -n;
    }
    let len = 1;
    for (let p = 10; p <= n; p *= 10) len++;
    this.digits(n, len);
  }

  /** The last `len` decimal digits of the non-negative integer n, zeros in front where it has fewer. */
  private digits(n: number, len: number): void {
    this.room(len);
    for (let i = this.at + len - 1; i >= this.at; i--) {
      const q = Math.floor(n / 10);
      this.buf[i] = 0x30 + (n - q * 10);
      n = q;
    }
    this.at += len;
  }

  /**
   * A non-integer with at most 6 decimals and |v| in [1e-6, 1e9), as String(v) writes it (the
   * usual sensor value: 41.25, -0.003), without making a string; false for any other value.
   * String(v) is the shortest decimal that reads back as v (ECMA-262 Number::toString), so it has
   * the fewest decimals k for which round(|v| 10^k) / 10^k === |v|, and that rounded integer's
   * digits (a division by an exact power of ten rounds correctly, as reading the decimal back does).
   * Below 1e9 a step of 10^-6 exceeds v's spacing, so no two such decimals read back as v.
   */
  decimal(v: number): boolean {
    const a = Math.abs(v);
    if (!(a >= 1e-6 && a < 1e9)) return false;
    for (let k = 1; k <= 6; k++) {
      const p = POW10[k] as number;
      const n = Math.round(a * p);
      if (n / p !== a) continue;
      const whole = Math.floor(n / p);
      if (v < 0) this.byte(0x2d);
      this.int(whole);
      this.byte(0x2e);
      // k digits of the fraction, leading zeros included (none trails: k is the fewest).
      this.digits(n - whole * p, k);
      return true;
    }
    return false;
  }

  done(): Buffer {
    return this.buf.subarray(0, this.at);
  }
}
