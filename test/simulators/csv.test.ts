import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NAME_PATTERN } from '../../gateway/src/contract/reading.js';
import {
  detectDelimiter,
  detectTimestamp,
  parseTimestampValue,
  planCsv,
  readCsvReadings,
  sanitizeHeaders,
  sanitizeMetricName,
} from '../../simulators/src/index.js';
import { newCsvStats, type CsvRow } from '../../simulators/src/replay/csv.js';

const dir = mkdtempSync(join(tmpdir(), 'sim-csv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('metric names from CSV headers', () => {
  it('sanitises to the contract pattern', () => {
    expect(sanitizeMetricName('Volume Flow RateRMS')).toBe('Volume_Flow_RateRMS');
    expect(sanitizeMetricName('Temperature (°C)')).toBe('Temperature_C');
    expect(sanitizeMetricName('Druck/bar  [Ausgang]')).toBe('Druck_bar_Ausgang');
    expect(sanitizeMetricName('Température')).toBe('Temperature');
    expect(sanitizeMetricName('%%%')).toBe('col');
    expect(sanitizeMetricName('x'.repeat(100))).toHaveLength(64);
    for (const h of ['a b', 'µm/s', '温度', ' lead', 'ok.name-1']) expect(sanitizeMetricName(h)).toMatch(NAME_PATTERN);
  });
  it('keeps names unique', () => {
    expect(sanitizeHeaders(['Flow (l/min)', 'Flow [l/min]', 'Flow l min'])).toEqual(['Flow_l_min', 'Flow_l_min_2', 'Flow_l_min_3']);
  });
});

describe('delimiter detection', () => {
  it('finds , ; and tab', () => {
    expect(detectDelimiter('a,b,c\n1,2,3\n4,5,6\n')).toBe(',');
    expect(detectDelimiter('a;b;c\n1,5;2,5;3\n4;5;6\n')).toBe(';');
    expect(detectDelimiter('a\tb\tc\n1\t2\t3\n4\t5\t6\n')).toBe('\t');
    expect(detectDelimiter('"x,y";b\n"1,2";3\n"4,5";6\n')).toBe(';');
  });
});

describe('timestamps', () => {
  it('parses ISO-8601 with a zone exactly', () => {
    expect(parseTimestampValue('2025-03-03T10:00:00Z', 'iso')).toBe(Date.UTC(2025, 2, 3, 10));
    expect(parseTimestampValue('2025-03-03 10:00:00.250+01:00', 'iso')).toBe(Date.UTC(2025, 2, 3, 9, 0, 0, 250));
    expect(parseTimestampValue('2025-03-03 10:00:00', 'iso')).toBeUndefined();
  });
  it('reads YYYY-MM-DD HH:mm:ss as local time by default, or UTC / a fixed offset', () => {
    expect(parseTimestampValue('2025-03-03 10:00:00', 'datetime')).toBe(new Date(2025, 2, 3, 10, 0, 0).getTime());
    expect(parseTimestampValue('2025-03-03 10:00:00', 'datetime', 0)).toBe(Date.UTC(2025, 2, 3, 10));
    expect(parseTimestampValue('2025-03-03 10:00:00', 'datetime', 120)).toBe(Date.UTC(2025, 2, 3, 8));
    expect(parseTimestampValue('2025-13-03 10:00:00', 'datetime')).toBeUndefined();
  });
  it('reads epoch seconds and milliseconds', () => {
    expect(parseTimestampValue('1741000000', 'epoch-s')).toBe(1741000000000);
    expect(parseTimestampValue('1741000000.5', 'epoch-s')).toBe(1741000000500);
    expect(parseTimestampValue('1741000000123', 'epoch-ms')).toBe(1741000000123);
  });
  it('detects the column by name, then by content; epoch only when the name says time', () => {
    expect(detectTimestamp(['a', 'time'], [['1', '1741000000123'], ['2', '1741000000124']])).toEqual({ index: 1, format: 'epoch-ms' });
    expect(detectTimestamp(['ts', 'v'], [['1741000000', '1'], ['1741000001', '2']])).toEqual({ index: 0, format: 'epoch-s' });
    expect(detectTimestamp(['v', 'when'], [['1', '2025-03-03T10:00:00Z'], ['2', '2025-03-03T10:00:01Z']])).toEqual({ index: 1, format: 'iso' });
    expect(() => detectTimestamp(['v', 'w'], [['1741000000', '1']])).toThrow(expect.objectContaining({ code: 'REPLAY_NO_TIMESTAMP' }));
  });
});

describe('planCsv', () => {
  it('plans a ;-separated decimal-comma file: timestamp, numeric metrics, excluded labels', () => {
    const text = 'datetime;Accelerometer1RMS;Volume Flow RateRMS;status;anomaly\n2020-02-08 13:30:47;0,2;32,0;ok;0\n2020-02-08 13:30:48;0,3;31,9;ok;0\n';
    const plan = planCsv(text, { exclude: ['anomaly'] });
    expect(plan.delimiter).toBe(';');
    expect(plan.decimalComma).toBe(true);
    expect(plan.timestampColumn).toBe('datetime');
    expect(plan.timestampFormat).toBe('datetime');
    expect(plan.metrics.map((m) => [m.column, m.name])).toEqual([
      ['Accelerometer1RMS', 'Accelerometer1RMS'],
      ['Volume Flow RateRMS', 'Volume_Flow_RateRMS'],
    ]);
    expect(plan.skipped).toEqual([
      { column: 'status', reason: 'not numeric' },
      { column: 'anomaly', reason: 'excluded' },
    ]);
  });
  it('honours explicit options and rejects unknown columns with a named error', () => {
    const text = 'when\ta\tb\n1741000000\t1\t2\n1741000001\t3\t4\n';
    const plan = planCsv(text, { delimiter: '\t', timestampColumn: 'when', timestampFormat: 'epoch-s', columns: ['b'] });
    expect(plan.metrics.map((m) => m.name)).toEqual(['b']);
    expect(() => planCsv(text, { timestampColumn: 'when', exclude: ['nope'] })).toThrow(/column "nope" is not in the file/);
  });
});

describe('readCsvReadings', () => {
  it('counts bad rows instead of failing and keeps good values of partly bad rows', async () => {
    const path = join(dir, 'rows.csv');
    writeFileSync(
      path,
      [
        'ts,temp,flow,label',
        '2025-03-03T10:00:00Z,20.5,100,a',
        '2025-03-03T10:00:01Z,20.6,abc,a', // bad cell: flow left out
        'yesterday,20.7,101,a', // bad timestamp
        '2025-03-03T10:00:03Z,20.8', // wrong field count
        '2025-03-03T10:00:04Z,,,a', // no values
        '2025-03-03T10:00:05Z,"20.9",102,"b"',
        '',
      ].join('\n'),
    );
    const plan = planCsv('ts,temp,flow,label\n2025-03-03T10:00:00Z,20.5,100,a\n2025-03-03T10:00:05Z,20.9,102,b\n');
    const stats = newCsvStats();
    const rows: CsvRow[] = [];
    for await (const r of readCsvReadings(path, plan, stats)) rows.push(r);
    expect(rows).toEqual([
      { line: 2, ts: Date.UTC(2025, 2, 3, 10, 0, 0), metrics: { temp: 20.5, flow: 100 }, cells: ['2025-03-03T10:00:00Z', '20.5', '100', 'a'] },
      { line: 3, ts: Date.UTC(2025, 2, 3, 10, 0, 1), metrics: { temp: 20.6 }, cells: ['2025-03-03T10:00:01Z', '20.6', 'abc', 'a'] },
      { line: 7, ts: Date.UTC(2025, 2, 3, 10, 0, 5), metrics: { temp: 20.9, flow: 102 }, cells: ['2025-03-03T10:00:05Z', '20.9', '102', 'b'] },
    ]);
    expect(stats).toMatchObject({ rows: 6, parsed: 3, badCells: 1, skipped: { bad_timestamp: 1, column_count: 1, no_values: 1, malformed: 0 } });
    expect(stats.examples.map((e) => [e.line, e.reason])).toEqual([
      [4, 'bad_timestamp'],
      [5, 'column_count'],
      [6, 'no_values'],
    ]);
  });
});
