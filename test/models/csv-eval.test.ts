/**
 * `npm run eval -- --csv-dir`: recorded, labelled CSV through the gateway's detection, scored point-wise
 * as SKAB scores it. Synthetic files written here (never ../shared data): a stationary baseline, then a
 * fault far outside it on one channel, labelled; the scoring must count every test row once, find a
 * fault that large, and read the files the way replay does (delimiters, decimal comma, epoch stamps).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { evaluateCsvDir, parseLabel, scoresOf } from '../../models/src/csv-eval.js';
import { Rng } from '../../simulators/src/prng.js';

const ROWS = 1000;
const FAULT = { from: 700, to: 850 };
const T0 = Date.UTC(2025, 2, 3, 8, 0, 0);

/** temp ~ N(40, 0.2), flow ~ N(100, 1); inside FAULT the given channel is 20 sd off. */
function series(seed: number, faulty: 'temp' | 'flow'): { temp: number; flow: number; label: boolean }[] {
  const rng = new Rng(seed);
  return Array.from({ length: ROWS }, (_, i) => {
    const bad = i >= FAULT.from && i < FAULT.to;
    return {
      temp: 40 + 0.2 * rng.normal() + (bad && faulty === 'temp' ? 4 : 0),
      flow: 100 + rng.normal() - (bad && faulty === 'flow' ? 20 : 0),
      label: bad,
    };
  });
}

function naive(ts: number): string {
  return new Date(ts).toISOString().replace('T', ' ').slice(0, 19);
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'smartops-csv-eval-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeFiles(): void {
  // SKAB's layout, written the European way: `;`, decimal comma, stamps without a zone, changepoint column.
  const a = series(1, 'flow').map((r, i) => [naive(T0 + i * 1000), r.temp.toFixed(3).replace('.', ','), r.flow.toFixed(3).replace('.', ','), r.label ? '1.0' : '0.0', i === FAULT.from || i === FAULT.to ? '1.0' : '0.0'].join(';'));
  writeFileSync(join(dir, '1.csv'), ['datetime;temp;flow;anomaly;changepoint', ...a, ''].join('\n'));
  // Epoch milliseconds, `,`, labels spelled true/false, no changepoint column.
  const b = series(2, 'temp').map((r, i) => [T0 + i * 1000, r.temp.toFixed(3), r.flow.toFixed(3), r.label ? 'true' : 'false'].join(','));
  writeFileSync(join(dir, '10.csv'), ['ts,temp,flow,anomaly', ...b, ''].join('\n'));
  // Too short for a baseline and a test part.
  const c = series(3, 'temp').slice(0, 100).map((r, i) => [T0 + i * 1000, r.temp.toFixed(3), r.flow.toFixed(3), '0'].join(','));
  writeFileSync(join(dir, '2.csv'), ['ts,temp,flow,anomaly', ...c, ''].join('\n'));
}

describe('csv evaluation', () => {
  it('scores every test row once, finds a fault far outside the baseline, and reads both file styles', async () => {
    writeFiles();
    const res = await evaluateCsvDir({ dir, label: 'anomaly', exclude: ['changepoint'], trainRows: 400, sets: [] });
    // Natural order; the short file is reported, not scored.
    expect(res.files.map((f) => f.file)).toEqual(['1.csv', '10.csv']);
    expect(res.skippedFiles).toEqual([{ file: '2.csv', reason: expect.stringContaining('--train-rows') }]);
    for (const f of res.files) {
      expect(f.metrics).toEqual(['temp', 'flow']);
      expect(f.rows).toBe(ROWS);
      expect(f.stepMs).toBe(1000);
      expect(f.tp + f.fp + f.fn + f.tn).toBe(ROWS - 400);
      expect(f.labelled).toBe(FAULT.to - FAULT.from);
      expect(f.tp + f.fn).toBe(f.labelled);
      // A 20 sd step is found within seconds and held while it lasts.
      const s = scoresOf(f);
      expect(s.recall).toBeGreaterThan(0.8);
      expect(f.alerts.length).toBeGreaterThan(0);
      const first = f.alerts.find((a) => a.row >= 400);
      expect(first?.row).toBeGreaterThanOrEqual(FAULT.from);
      expect(first?.row).toBeLessThan(FAULT.from + 30);
    }
    expect(res.files[0]?.leftOut).toEqual([
      { column: 'datetime', reason: 'timestamp' },
      { column: 'anomaly', reason: 'label' },
      { column: 'changepoint', reason: 'excluded' },
    ]);
    expect(res.files[0]?.alerts[0]?.contributors).toMatch(/flow/);
    expect(res.files[1]?.alerts[0]?.contributors).toMatch(/temp/);
    const sum = (k: 'tp' | 'fp' | 'fn' | 'tn') => res.files.reduce((n, f) => n + f[k], 0);
    expect(res.totals).toEqual({ tp: sum('tp'), fp: sum('fp'), fn: sum('fn'), tn: sum('tn') });
  });

  it('without labels every row is normal, so any open condition is a false alarm', async () => {
    writeFiles();
    const res = await evaluateCsvDir({ dir, label: null, exclude: ['anomaly', 'changepoint'], trainRows: 400, sets: [] });
    for (const f of res.files) {
      expect(f.tp + f.fn).toBe(0);
      expect(f.labelled).toBe(0);
      // The same faults, now counted against the detector.
      expect(f.fp).toBeGreaterThan(0.8 * (FAULT.to - FAULT.from));
    }
  });

  it('reads subfolders; a file without the label column is reported, not scored; none with it is an error', async () => {
    writeFiles();
    mkdirSync(join(dir, 'normal'));
    const free = series(5, 'temp').map((r, i) => [T0 + i * 1000, r.temp.toFixed(3), r.flow.toFixed(3)].join(','));
    writeFileSync(join(dir, 'normal', 'free.csv'), ['ts,temp,flow', ...free, ''].join('\n'));
    const res = await evaluateCsvDir({ dir, label: 'anomaly', exclude: ['changepoint'], trainRows: 400, sets: [] });
    expect(res.files.map((f) => f.file)).toEqual(['1.csv', '10.csv']);
    expect(res.skippedFiles).toEqual([
      { file: '2.csv', reason: expect.stringContaining('--train-rows') },
      { file: 'normal/free.csv', reason: 'no label column "anomaly" (columns: ts, temp, flow)' },
    ]);
    // --no-labels scores it (and the labelled files, as all normal).
    const free2 = await evaluateCsvDir({ dir: join(dir, 'normal'), label: null, exclude: [], trainRows: 400, sets: [] });
    expect(free2.files.map((f) => [f.file, f.tp + f.fp + f.fn + f.tn])).toEqual([['free.csv', ROWS - 400]]);
    await expect(evaluateCsvDir({ dir, label: 'label', exclude: [], trainRows: 400, sets: [] })).rejects.toThrow(/no file has the label column; 1\.csv: no label column "label" \(columns: datetime, temp, flow, anomaly, changepoint\)\. Give --label-column, or --no-labels/);
  });

  it('refuses a label cell that is not 0/1, true/false or yes/no, naming the line', async () => {
    const rows = series(4, 'temp').map((r, i) => [T0 + i * 1000, r.temp.toFixed(3), r.flow.toFixed(3), i === 500 ? 'maybe' : '0'].join(','));
    writeFileSync(join(dir, 'x.csv'), ['ts,temp,flow,anomaly', ...rows, ''].join('\n'));
    await expect(evaluateCsvDir({ dir, label: 'anomaly', exclude: [], trainRows: 400, sets: [] })).rejects.toThrow(/line 502: label "maybe"/);
  });

  it('computes SKAB\'s point-wise figures', () => {
    // Hand-computed: F1 = 3 / (3 + (1 + 1) / 2), FAR = 1 / 6, MAR = 1 / 4.
    const s = scoresOf({ tp: 3, fp: 1, fn: 1, tn: 5 });
    expect(s.precision).toBeCloseTo(0.75, 12);
    expect(s.recall).toBeCloseTo(0.75, 12);
    expect(s.f1).toBeCloseTo(0.75, 12);
    expect(s.far).toBeCloseTo(100 / 6, 12);
    expect(s.mar).toBeCloseTo(25, 12);
    expect(scoresOf({ tp: 0, fp: 0, fn: 0, tn: 0 })).toEqual({ precision: 0, recall: 0, f1: 0, far: 0, mar: 0 });
    expect([' 1.0', '0', 'TRUE', 'no', '2', ''].map(parseLabel)).toEqual([true, false, true, false, true, undefined]);
  });
});
