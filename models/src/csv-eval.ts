/**
 * Recorded, labelled CSV data through the gateway's detection (`npm run eval -- --csv-dir DIR`), scored
 * the way the SKAB benchmark scores the outlier problem (../shared/skab/README.md, "How the benchmark
 * scores"): each file is one machine; its first `trainRows` rows are the baseline (normal operation), the
 * rest is the test part; a test row is predicted anomalous while the machine's anomaly condition is open
 * at its time (causal: nothing after the row is used). Point-wise over all test parts together:
 * F1 = TP / (TP + (FN + FP) / 2), FAR = FP / (FP + TN) x 100, MAR = FN / (FN + TP) x 100.
 *
 * Files are read with the replay's CSV reader (simulators/src/replay/csv.ts), so eval and replay agree on
 * delimiters, decimal commas, timestamp columns and formats, and metric names. Event time is the row's
 * index times the file's median sampling interval (at least 1 s): recorded files repeat seconds (SKAB
 * does), and detection needs strictly increasing event time.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { createDetection } from '../../gateway/src/detect/index.js';
import { newCsvStats, planCsv, readCsvReadings, readCsvSample, sanitizeMetricName, type CsvPlan } from '../../simulators/src/replay/csv.js';
import { configFrom, median, track } from './eval-common.js';

export interface CsvEvalOptions {
  dir: string;
  /** Label column (1 = anomalous row); null: the files carry no labels and every row is normal (only FAR means anything). */
  label: string | null;
  /** Columns that are neither metrics nor the label (e.g. SKAB's `changepoint`); absent ones are ignored. */
  exclude: readonly string[];
  trainRows: number;
  /** `--set path=value` detection overrides. */
  sets: readonly string[];
}

export interface Confusion {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface CsvAlert {
  /** Row index (0-based, data rows) of the window end at which the condition opened. */
  row: number;
  message: string;
  contributors: string;
}

export interface CsvFileResult extends Confusion {
  file: string;
  /** Data rows read (rows the reader skipped are not counted: see skippedRows). */
  rows: number;
  trainRows: number;
  /** Test rows labelled anomalous. */
  labelled: number;
  stepMs: number;
  metrics: string[];
  /** Columns left out, and why (`label`, `excluded`, `timestamp`, or the reader's reason). */
  leftOut: { column: string; reason: string }[];
  /** Rows the CSV reader skipped (malformed, wrong field count, bad timestamp, no numeric value). */
  skippedRows: number;
  alerts: CsvAlert[];
}

export interface CsvEvalResult {
  files: CsvFileResult[];
  /** Files not scored, and why (no label column; too few rows for a baseline and a test part). */
  skippedFiles: { file: string; reason: string }[];
  totals: Confusion;
}

export interface Scores {
  precision: number;
  recall: number;
  f1: number;
  /** False-alarm rate, % of normal test rows. */
  far: number;
  /** Missed-alarm rate, % of anomalous test rows. */
  mar: number;
}

/** SKAB's point-wise figures; a ratio with nothing to divide is 0 (no rows of that class). */
export function scoresOf(c: Confusion): Scores {
  const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);
  return {
    precision: ratio(c.tp, c.tp + c.fp),
    recall: ratio(c.tp, c.tp + c.fn),
    f1: ratio(c.tp, c.tp + (c.fn + c.fp) / 2),
    far: 100 * ratio(c.fp, c.fp + c.tn),
    mar: 100 * ratio(c.fn, c.fn + c.tp),
  };
}

/** A label cell: 1/0 in any numeric spelling (`1.0`), true/false, yes/no; anything else is an error. */
export function parseLabel(raw: string): boolean | undefined {
  const s = raw.trim().toLowerCase();
  if (s === 'true' || s === 'yes') return true;
  if (s === 'false' || s === 'no') return false;
  if (s.length === 0) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n !== 0 : undefined;
}

async function planFor(path: string, o: CsvEvalOptions): Promise<{ plan: CsvPlan; labelIndex: number } | { noLabel: string }> {
  const sample = await readCsvSample(path);
  // Planned once to learn the headers, then with the label and the excluded columns that exist left out.
  const headers = planCsv(sample, { tz: 'utc' }).headers;
  if (o.label !== null && !headers.includes(o.label)) return { noLabel: `no label column "${o.label}" (columns: ${headers.join(', ')})` };
  const exclude = [...(o.label !== null ? [o.label] : []), ...o.exclude.filter((c) => headers.includes(c))];
  const plan = planCsv(sample, { tz: 'utc', exclude });
  return { plan, labelIndex: o.label !== null ? plan.headers.indexOf(o.label) : -1 };
}

async function evaluateFile(dir: string, file: string, o: CsvEvalOptions): Promise<CsvFileResult | { skipped: string; noLabel?: true }> {
  const path = join(dir, file);
  const planned = await planFor(path, o);
  // A recording of normal operation only (SKAB's anomaly-free.csv) beside labelled ones: reported, not scored.
  if ('noLabel' in planned) return { skipped: planned.noLabel, noLabel: true };
  const { plan, labelIndex } = planned;
  const stats = newCsvStats();
  const ts: number[] = [];
  const metrics: Record<string, number>[] = [];
  const truth: boolean[] = [];
  for await (const row of readCsvReadings(path, plan, stats)) {
    let label = false;
    if (labelIndex >= 0) {
      const v = parseLabel(row.cells[labelIndex] ?? '');
      if (v === undefined) throw new Error(`${path} line ${row.line}: label "${row.cells[labelIndex] ?? ''}" in column "${o.label}" is not 0/1, true/false or yes/no`);
      label = v;
    }
    ts.push(row.ts);
    metrics.push(row.metrics);
    truth.push(label);
  }
  const skippedRows = stats.rows - stats.parsed;
  if (ts.length <= o.trainRows) return { skipped: `${ts.length} data rows, not more than the ${o.trainRows} baseline rows (--train-rows)` };

  const dts = ts.slice(1).map((t, i) => t - (ts[i] as number)).filter((d) => d > 0);
  const stepMs = Math.max(1000, median(dts) || 1000);
  const t0 = ts[0] as number;
  // The file's path as a machine id, made contract-safe as replay makes a header a metric name.
  const machine = sanitizeMetricName(file.replace(/\.csv$/i, ''));
  const readings: Reading[] = metrics.map((m, i) => ({ machine, ts: t0 + i * stepMs, metrics: m }));
  // Windows sized to the data (10 samples, hop 1 sample): a baseline of a few hundred rows cannot fill
  // the gateway's 60 s windows of a 1 s machine often enough.
  const cfg = configFrom(o.sets, {
    windowMs: Math.round(stepMs * 10),
    hopMs: Math.round(stepMs),
    latenessMs: 0,
    baseline: { durationMs: Math.max(60_000, (o.trainRows - 10) * stepMs), minWindows: 10 },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'smartops-eval-csv-'));
  const det = await createDetection(cfg, { dataDir, logger: pino({ level: 'warn' }), manualFlush: true });
  try {
    const tr = track(det);
    det.push(readings);
    det.tick(Number.MAX_SAFE_INTEGER);
    await det.flush();
    const opens = tr.opens.get(machine) ?? [];
    const events = [...opens.map((a) => ({ t: a.raisedAt, open: true })), ...(tr.clears.get(machine) ?? []).map((t) => ({ t, open: false }))].sort((a, b) => a.t - b.t);
    const c: Confusion = { tp: 0, fp: 0, fn: 0, tn: 0 };
    let labelled = 0;
    let e = 0;
    let open = false;
    for (let i = 0; i < readings.length; i++) {
      const t = (readings[i] as Reading).ts;
      while (e < events.length && (events[e] as { t: number }).t <= t) open = (events[e++] as { open: boolean }).open;
      if (i < o.trainRows) continue;
      const actual = truth[i] as boolean;
      if (actual) labelled++;
      if (actual && open) c.tp++;
      else if (actual) c.fn++;
      else if (open) c.fp++;
      else c.tn++;
    }
    const leftOut = [
      { column: plan.timestampColumn, reason: 'timestamp' },
      ...plan.skipped.map((s) => ({ column: s.column, reason: s.column === o.label ? 'label' : s.reason })),
    ];
    return {
      file,
      rows: readings.length,
      trainRows: o.trainRows,
      labelled,
      stepMs,
      metrics: plan.metrics.map((m) => m.name),
      leftOut,
      skippedRows,
      ...c,
      alerts: opens.map((a) => ({
        row: Math.round((a.raisedAt - t0) / stepMs),
        message: a.event.message,
        contributors: a.event.contributors.map((x) => x.text).join('; '),
      })),
    };
  } finally {
    await det.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** `*.csv` files below `dir`, subfolders included (SKAB's data/valve1, data/valve2, data/other), as paths relative to it. */
function csvFiles(dir: string, sub = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...csvFiles(dir, rel));
    else if (e.isFile() && e.name.toLowerCase().endsWith('.csv')) out.push(rel);
  }
  return out;
}

/**
 * Every `*.csv` below `dir` (natural order: 2.csv before 10.csv), each as one machine. A file without
 * the label column is reported and not scored; when no file has it, that is an error (a wrong
 * --label-column, or recordings that need --no-labels).
 */
export async function evaluateCsvDir(o: CsvEvalOptions): Promise<CsvEvalResult> {
  const names = csvFiles(o.dir).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (names.length === 0) throw new Error(`--csv-dir ${o.dir}: no .csv files`);
  const files: CsvFileResult[] = [];
  const skippedFiles: { file: string; reason: string; noLabel?: true }[] = [];
  const totals: Confusion = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (const name of names) {
    const r = await evaluateFile(o.dir, name, o);
    if ('skipped' in r) {
      skippedFiles.push({ file: name, reason: r.skipped, ...(r.noLabel ? { noLabel: true as const } : {}) });
      continue;
    }
    files.push(r);
    totals.tp += r.tp;
    totals.fp += r.fp;
    totals.fn += r.fn;
    totals.tn += r.tn;
  }
  if (files.length === 0 && skippedFiles.length > 0 && skippedFiles.every((f) => f.noLabel)) {
    throw new Error(`--csv-dir ${o.dir}: no file has the label column; ${skippedFiles[0]?.file}: ${skippedFiles[0]?.reason}. Give --label-column, or --no-labels for recordings of normal operation only`);
  }
  return { files, skippedFiles: skippedFiles.map(({ file, reason }) => ({ file, reason })), totals };
}
