import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { parse } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { NAME_PATTERN } from '../../../gateway/src/contract/reading.js';
import { SimError } from '../errors.js';

/** Timestamp encodings replay understands. */
export type TimestampFormat = 'iso' | 'datetime' | 'epoch-s' | 'epoch-ms';
export const TIMESTAMP_FORMATS: readonly TimestampFormat[] = ['iso', 'datetime', 'epoch-s', 'epoch-ms'];
export type Delimiter = ',' | ';' | '\t';

export interface CsvOptions {
  /** Field delimiter; auto-detected among `,` `;` tab when absent. */
  delimiter?: Delimiter;
  /** Name of the timestamp column (after trimming); auto-detected when absent. */
  timestampColumn?: string;
  /** Timestamp encoding; auto-detected from the sampled values when absent. */
  timestampFormat?: TimestampFormat;
  /**
   * Time zone of `datetime` stamps (no zone in the text): `local` (this host's zone, default), `utc`,
   * or a fixed offset such as `+02:00`. ISO stamps with a zone and epoch values ignore it.
   */
  tz?: string;
  /** Columns never published (e.g. label columns `anomaly`, `changepoint`). */
  exclude?: readonly string[];
  /** Publish only these columns (default: every numeric column except the timestamp). */
  columns?: readonly string[];
}

export interface CsvPlan {
  delimiter: Delimiter;
  /** `;`-separated files written with a decimal comma (`1,5`). */
  decimalComma: boolean;
  headers: string[];
  timestampColumn: string;
  timestampIndex: number;
  timestampFormat: TimestampFormat;
  /** Offset to apply to `datetime` stamps: minutes east of UTC, or 'local'. */
  tz: 'local' | number;
  /** Published columns: CSV header -> contract-safe metric name. */
  metrics: { column: string; index: number; name: string }[];
  /** Columns left out, and why. */
  skipped: { column: string; reason: 'excluded' | 'not numeric' | 'not selected' }[];
}

export interface CsvRow {
  /** 1-based line number in the file. */
  line: number;
  ts: number;
  metrics: Record<string, number>;
  /** The row's cells as read (trimmed), header order: for columns that are not metrics (e.g. a label). */
  cells: readonly string[];
}

export interface CsvStats {
  rows: number;
  parsed: number;
  /** Rows skipped, by reason. */
  skipped: Record<'malformed' | 'column_count' | 'bad_timestamp' | 'no_values', number>;
  /** Non-empty cells that were not numbers (the metric is left out of that reading). */
  badCells: number;
  /** First few problems, for the report. */
  examples: { line: number; reason: string; detail: string }[];
}

/** Make a CSV header a metric name matching the contract: `Volume Flow RateRMS` -> `Volume_Flow_RateRMS`. */
export function sanitizeMetricName(header: string): string {
  let s = header.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  s = s.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/_+/g, '_').replace(/^_+|_+$/g, '');
  if (s.length === 0) s = 'col';
  return s.slice(0, 64);
}

/** Sanitise a set of headers, keeping names unique (`_2`, `_3` suffixes). */
export function sanitizeHeaders(headers: readonly string[]): string[] {
  const used = new Set<string>();
  return headers.map((h, i) => {
    let base = sanitizeMetricName(h || `col_${i + 1}`);
    let name = base;
    for (let n = 2; used.has(name); n++) {
      const suffix = `_${n}`;
      base = base.slice(0, 64 - suffix.length);
      name = base + suffix;
    }
    used.add(name);
    if (!NAME_PATTERN.test(name)) throw new SimError('REPLAY_BAD_CSV', `header "${h}" cannot be made a metric name`);
    return name;
  });
}

/** Pick the delimiter whose per-line count is the same (and > 0) on the first lines; `,` `;` tab. */
export function detectDelimiter(sample: string): Delimiter {
  const lines = sample.split(/\r?\n/).filter((l) => l.trim().length > 0).slice(0, 20);
  // the last line of a sample may be cut off
  if (lines.length > 2) lines.pop();
  let best: { d: Delimiter; count: number; consistent: boolean } | undefined;
  for (const d of [';', '\t', ','] as const) {
    const counts = lines.map((l) => countOutsideQuotes(l, d));
    const first = counts[0] ?? 0;
    if (first === 0) continue;
    const consistent = counts.every((c) => c === first);
    const cand = { d, count: first, consistent };
    if (!best || (cand.consistent && !best.consistent) || (cand.consistent === best.consistent && cand.count > best.count)) best = cand;
  }
  return best?.d ?? ',';
}

function countOutsideQuotes(line: string, d: string): number {
  let n = 0;
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') q = !q;
    else if (!q && c === d) n++;
  }
  return n;
}

const ISO_ZONED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
const NAIVE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/;
const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const DECIMAL_COMMA = /^[+-]?\d+,\d+$/;
const TS_HEADER = /^(ts|time|timestamp|datetime|date_?time|date|time_?stamp|zeit|zeitstempel|t)$/i;

function parseTz(tz: string | undefined): 'local' | number {
  if (tz === undefined || tz === 'local') return 'local';
  if (tz === 'utc' || tz === 'UTC' || tz === 'Z') return 0;
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(tz);
  if (!m) throw new SimError('REPLAY_BAD_OPTION', `--tz "${tz}": use local, utc or an offset such as +02:00`);
  const mins = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -mins : mins;
}

/** Parse one timestamp cell in a known format; undefined if it does not parse. */
export function parseTimestampValue(raw: string, format: TimestampFormat, tz: 'local' | number = 'local'): number | undefined {
  const s = raw.trim();
  switch (format) {
    case 'iso': {
      if (!ISO_ZONED.test(s)) return undefined;
      const ms = Date.parse(s.replace(' ', 'T'));
      return Number.isFinite(ms) ? ms : undefined;
    }
    case 'datetime': {
      const m = NAIVE.exec(s);
      if (!m) return undefined;
      const [y, mo, d, h, mi] = [Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5])];
      const sec = m[6] ? Number(m[6]) : 0;
      const ms = m[7] ? Math.round(Number(`0.${m[7]}`) * 1000) : 0;
      if (mo > 11 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return undefined;
      const t = tz === 'local' ? new Date(y, mo, d, h, mi, sec, ms).getTime() : Date.UTC(y, mo, d, h, mi, sec, ms) - tz * 60_000;
      return Number.isFinite(t) ? t : undefined;
    }
    case 'epoch-s':
    case 'epoch-ms': {
      if (!NUMERIC.test(s)) return undefined;
      const n = Number(s);
      if (!Number.isFinite(n) || n < 0) return undefined;
      return Math.round(format === 'epoch-s' ? n * 1000 : n);
    }
  }
}

/** Guess the timestamp format of sample values; undefined when they are not timestamps. */
export function guessTimestampFormat(values: readonly string[], allowEpoch: boolean): TimestampFormat | undefined {
  const v = values.map((x) => x.trim()).filter((x) => x.length > 0);
  if (v.length === 0) return undefined;
  // a few bad rows must not defeat detection: three quarters of the sampled values decide
  const most = (re: RegExp): boolean => v.filter((x) => re.test(x)).length >= 0.75 * v.length;
  if (most(ISO_ZONED)) return 'iso';
  if (most(NAIVE)) return 'datetime';
  if (allowEpoch && most(NUMERIC)) {
    const sorted = v.filter((x) => NUMERIC.test(x)).map(Number).sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)] as number;
    // 1e11 ms = 1973; 1e11 s = year 5138: ms from 1e11 up, seconds 1e8 (1973) .. 1e11
    if (med >= 1e11 && med < 1e14) return 'epoch-ms';
    if (med >= 1e8 && med < 1e11) return 'epoch-s';
  }
  return undefined;
}

/**
 * Find the timestamp column: the one named by the user, else a column named like a time (`ts`,
 * `time`, `timestamp`, `datetime`, `date`...), else the first column whose values are all ISO or
 * `YYYY-MM-DD HH:mm:ss` stamps. Numeric epoch columns are only taken when the header says time.
 */
export function detectTimestamp(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  opts: { column?: string; format?: TimestampFormat } = {},
): { index: number; format: TimestampFormat } {
  const values = (i: number): string[] => rows.map((r) => r[i] ?? '');
  const formatFor = (i: number, allowEpoch: boolean): TimestampFormat | undefined => opts.format ?? guessTimestampFormat(values(i), allowEpoch);
  if (opts.column !== undefined) {
    const index = headers.indexOf(opts.column);
    if (index < 0) throw new SimError('REPLAY_NO_TIMESTAMP', `--ts-column "${opts.column}" is not a column (columns: ${headers.join(', ')})`);
    const format = formatFor(index, true);
    if (!format) throw new SimError('REPLAY_NO_TIMESTAMP', `--ts-column "${opts.column}": values are not ISO-8601, YYYY-MM-DD HH:mm:ss or epoch s/ms; give --ts-format`);
    return { index, format };
  }
  for (let i = 0; i < headers.length; i++) {
    if (!TS_HEADER.test(headers[i] as string)) continue;
    const format = formatFor(i, true);
    if (format) return { index: i, format };
  }
  for (let i = 0; i < headers.length; i++) {
    const format = formatFor(i, false);
    if (format) return { index: i, format };
  }
  throw new SimError('REPLAY_NO_TIMESTAMP', `no timestamp column found among ${headers.join(', ')}; give --ts-column (and --ts-format if needed)`);
}

function parseNumber(raw: string, decimalComma: boolean): number | undefined {
  let s = raw.trim();
  if (s.length === 0) return undefined;
  if (decimalComma && DECIMAL_COMMA.test(s)) s = s.replace(',', '.');
  if (!NUMERIC.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** Bytes planCsv looks at: enough for the header and a couple of hundred rows. */
export const CSV_SAMPLE_BYTES = 64 * 1024;

/** The first CSV_SAMPLE_BYTES of a file, for planCsv; `label` prefixes the path in the error (e.g. `--file `). */
export async function readCsvSample(path: string, label = ''): Promise<string> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new SimError('REPLAY_BAD_CSV', `${label}${path}: cannot open (${(e as Error).message})`);
  }
  try {
    const buf = Buffer.alloc(CSV_SAMPLE_BYTES);
    const { bytesRead } = await fh.read(buf, 0, CSV_SAMPLE_BYTES, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Decide how to read a CSV from its first bytes: delimiter, decimal comma, timestamp column and
 * format, and which columns are metrics (default: every column whose sampled values are at least
 * 75% numbers, except the timestamp and `exclude`).
 */
export function planCsv(sample: string, opts: CsvOptions = {}): CsvPlan {
  const text = sample.replace(/^\uFEFF/, '');
  const delimiter = opts.delimiter ?? detectDelimiter(text);
  // cut the sample at its last complete line
  const cut = text.lastIndexOf('\n');
  const complete = cut > 0 && cut < text.length - 1 ? text.slice(0, cut + 1) : text;
  let records: string[][];
  try {
    records = parseSync(complete, { delimiter, relax_column_count: true, skip_empty_lines: true, trim: true, relax_quotes: true, to: 201 }) as string[][];
  } catch (e) {
    throw new SimError('REPLAY_BAD_CSV', `cannot parse the CSV header/sample: ${(e as Error).message}`);
  }
  const headers = records[0];
  if (!headers || headers.length < 2) {
    throw new SimError('REPLAY_BAD_CSV', `need a header row and at least two columns (delimiter "${delimiter === '\t' ? '\\t' : delimiter}"); give --delimiter if detection failed`);
  }
  const rows = records.slice(1).filter((r) => r.length === headers.length);
  if (rows.length === 0) throw new SimError('REPLAY_BAD_CSV', 'no data rows with as many fields as the header');
  const decimalComma = delimiter === ';' && rows.some((r) => r.some((c) => DECIMAL_COMMA.test(c.trim())));
  const tzValue = parseTz(opts.tz);
  const tsOpts: { column?: string; format?: TimestampFormat } = {};
  if (opts.timestampColumn !== undefined) tsOpts.column = opts.timestampColumn;
  if (opts.timestampFormat !== undefined) tsOpts.format = opts.timestampFormat;
  const { index: timestampIndex, format } = detectTimestamp(headers, rows, tsOpts);
  for (const c of [...(opts.exclude ?? []), ...(opts.columns ?? [])]) {
    if (!headers.includes(c)) throw new SimError('REPLAY_BAD_OPTION', `column "${c}" is not in the file (columns: ${headers.join(', ')})`);
  }
  const names = sanitizeHeaders(headers);
  const metrics: CsvPlan['metrics'] = [];
  const skipped: CsvPlan['skipped'] = [];
  headers.forEach((h, i) => {
    if (i === timestampIndex) return;
    if (opts.exclude?.includes(h)) return skipped.push({ column: h, reason: 'excluded' });
    if (opts.columns && !opts.columns.includes(h)) return skipped.push({ column: h, reason: 'not selected' });
    const vals = rows.map((r) => r[i] ?? '').filter((v) => v.trim().length > 0);
    const numeric = vals.filter((v) => parseNumber(v, decimalComma) !== undefined).length;
    if (vals.length === 0 || numeric < 0.75 * vals.length) return skipped.push({ column: h, reason: 'not numeric' });
    metrics.push({ column: h, index: i, name: names[i] as string });
  });
  if (metrics.length === 0) throw new SimError('REPLAY_NO_METRICS', `no numeric metric columns (columns: ${headers.join(', ')})`);
  return { delimiter, decimalComma, headers, timestampColumn: headers[timestampIndex] as string, timestampIndex, timestampFormat: format, tz: tzValue, metrics, skipped };
}

/**
 * Stream the rows of a CSV file as readings. Bad rows are counted in `stats` (never thrown):
 * malformed CSV, wrong field count, unparsable timestamp, no numeric value. A non-numeric cell leaves
 * that metric out of the row's reading and is counted in `badCells`.
 */
export async function* readCsvReadings(path: string, plan: CsvPlan, stats: CsvStats = newCsvStats()): AsyncGenerator<CsvRow, CsvStats, undefined> {
  const note = (line: number, reason: keyof CsvStats['skipped'], detail: string): void => {
    stats.skipped[reason]++;
    if (stats.examples.length < 5) stats.examples.push({ line, reason, detail });
  };
  const parser = createReadStream(path).pipe(
    parse({
      delimiter: plan.delimiter,
      bom: true,
      from_line: 2,
      relax_column_count: true,
      relax_quotes: true,
      skip_empty_lines: true,
      trim: true,
      info: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        stats.rows++;
        note(typeof err?.lines === 'number' ? err.lines : 0, 'malformed', err?.message ?? 'malformed CSV');
        return undefined;
      },
    }),
  );
  const n = plan.headers.length;
  for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    const { record, info } = item;
    const line = info.lines;
    stats.rows++;
    if (record.length !== n) {
      note(line, 'column_count', `${record.length} fields, header has ${n}`);
      continue;
    }
    const tsRaw = record[plan.timestampIndex] as string;
    const ts = parseTimestampValue(tsRaw, plan.timestampFormat, plan.tz);
    if (ts === undefined) {
      note(line, 'bad_timestamp', `"${tsRaw.slice(0, 40)}" is not ${plan.timestampFormat}`);
      continue;
    }
    const metrics: Record<string, number> = {};
    let count = 0;
    for (const m of plan.metrics) {
      const cell = record[m.index] as string;
      const v = parseNumber(cell, plan.decimalComma);
      if (v === undefined) {
        if (cell.trim().length > 0) stats.badCells++;
        continue;
      }
      metrics[m.name] = v;
      count++;
    }
    if (count === 0) {
      note(line, 'no_values', 'no numeric metric value in the row');
      continue;
    }
    stats.parsed++;
    yield { line, ts, metrics, cells: record };
  }
  return stats;
}

export function newCsvStats(): CsvStats {
  return { rows: 0, parsed: 0, skipped: { malformed: 0, column_count: 0, bad_timestamp: 0, no_values: 0 }, badCells: 0, examples: [] };
}
