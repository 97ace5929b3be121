import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeMeasurement, escapeTag, formatPoint, formatStringField, metricOfFieldKey, readingToLine, telemetryFieldKey, TelemetryLines } from '../../gateway/src/sinks/lineprotocol.js';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';

describe('line protocol escaping', () => {
  it('escapes measurement commas and spaces', () => {
    expect(escapeMeasurement('my meas,x=1')).toBe('my\\ meas\\,x=1');
  });
  it('escapes tag keys/values and field keys: comma, equals, space', () => {
    expect(escapeTag('a b,c=d')).toBe('a\\ b\\,c\\=d');
    expect(escapeTag('Ünïcode ✓')).toBe('Ünïcode\\ ✓');
  });
  it('quotes string fields, escaping quote and backslash', () => {
    expect(formatStringField('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(formatStringField('two\nlines')).toBe('"two lines"');
  });
  it('formats a reading as a telemetry point with sorted tags and float fields', () => {
    const line = readingToLine({ machine: 'cnc-01', ts: 1700000000123, metrics: { temp_c: 41, 'vib.rms': 0.5 } }, { site: 'plant a', line: undefined });
    expect(line).toBe('telemetry,machine=cnc-01,site=plant\\ a temp_c=41,vib.rms=0.5 1700000000123');
  });
  it('TelemetryLines (cached series prefix and field keys) writes exactly what readingToLine writes', () => {
    const tags: Record<string, Record<string, string | undefined>> = {
      'press 1,a=b': { site: 'plant a,b=c', line: '', kind: 'press=x' },
      'cnc-01': { site: 'plant-b', line: 'l 2', kind: undefined },
    };
    const tagsFor = (m: string): Record<string, string | undefined> | undefined => tags[m];
    const lines = new TelemetryLines(tagsFor);
    const readings: Reading[] = [
      { machine: 'press 1,a=b', ts: 1700000000123.7, metrics: { 'temp c': 41, 'a,b=c': -0.125, x: 1e21 } },
      { machine: 'cnc-01', ts: 1700000000124, metrics: { v: 5e-7 } },
      { machine: 'unknown-9', ts: 1700000000125, metrics: { 'temp c': 2 } },
      // Second time round: from the caches.
      { machine: 'press 1,a=b', ts: 1700000000126, metrics: { x: 3, 'temp c': 4 } },
      { machine: 'cnc-01', ts: 1700000000127, metrics: { v: 6, w: 7 } },
    ];
    for (const r of readings) expect(lines.encode([r]).toString('utf8')).toBe(readingToLine(r, tagsFor(r.machine)));
  });
  it('TelemetryLines.encode gives the UTF-8 bytes of the lines joined by newlines, however long the batch', () => {
    const tagsFor = (m: string): Record<string, string | undefined> | undefined => (m.startsWith('p') ? { site: 'Halle Süd, 3', kind: 'presse=ü' } : undefined);
    const r: Reading[] = [];
    // Names that escape, multi-byte names and values, reserved keys, skipped non-finite values,
    // numbers in every form String() gives, fractional and negative timestamps.
    // Integers are written digit by digit (no string), up to 2^53; the rest through String().
    const values = [0, -0, 1, -1.5, 0.1 + 0.2, 1e21, -1e-7, 123456789.123, Number.MAX_VALUE, Number.MIN_VALUE, Number.NaN, Number.POSITIVE_INFINITY, 42, -1, -7, 10, 99, 100, 2 ** 53 - 1, -(2 ** 53), 1e20, -1e22, 1e300];
    for (let i = 0; i < 3000; i++) {
      const metrics: Record<string, number> = { [`temp ${i % 3}`]: values[i % values.length] as number, 'ünï✓,=x': i / 7 };
      if (i % 5 === 0) metrics.time = i;
      if (i % 11 === 0) metrics.machine = -i;
      const ts = [1700000000000 + i * 1.7, -1700000000000 - i * 1.3, i * 0.4, 2 ** 53 + i * 4096][i % 4] as number;
      r.push({ machine: i % 2 ? `press ${i % 13},a=b` : `cnc-${i % 17}-✓`, ts, metrics });
    }
    for (const n of [1, 2, 3, 100, 3000]) {
      const batch = r.slice(0, n);
      const expected = Buffer.from(batch.map((x) => readingToLine(x, tagsFor(x.machine))).join('\n'));
      // A fresh instance (caches empty) and one that has seen every machine and metric before.
      for (const lines of [new TelemetryLines(tagsFor), (() => { const l = new TelemetryLines(tagsFor); l.encode(r); return l; })()]) {
        const got = lines.encode(batch);
        expect(got.length).toBe(expected.length);
        expect(got.equals(expected)).toBe(true);
      }
    }
    // Decimals are written digit by digit too (up to 6 decimals, |v| in [1e-6, 1e9)): the same text
    // as String() for values of every such shape, and for values just outside it.
    let seed = 7;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const decimals: number[] = [0.1 + 0.2, 1.005, 2.675, 1e-6, -1.5e-6, 9.99e-7, 999999999.5, 1e9 + 0.5, 0.07, -4.35, 123456.000001, 0.1234567, 5e-324];
    for (let i = 0; i < 60_000; i++) {
      const k = i % 8;
      const mag = 10 ** (Math.floor(rnd() * 14) - 5);
      decimals.push(Math.round((rnd() - 0.5) * mag * 10 ** k) / 10 ** k, (rnd() - 0.5) * mag);
    }
    const dr: Reading[] = decimals.map((v, i) => ({ machine: 'm', ts: i, metrics: { v, w: -v / 3 } }));
    const dl = new TelemetryLines(() => undefined);
    const dexp = dr.map((x) => readingToLine(x)).join('\n');
    expect(dl.encode(dr).toString('utf8') === dexp).toBe(true);
    // As line() does: a reading with no finite metric is refused, not written as a broken line.
    expect(() => new TelemetryLines(tagsFor).encode([{ machine: 'm', ts: 1, metrics: { a: Number.NaN } }])).toThrow(RangeError);
  });
  it('stores a metric InfluxDB cannot keep under its name (time, a tag key, a 2.x reserved key) as <name>_, one-to-one and the same in every reading', () => {
    const r: Reading = { machine: 'm1', ts: 5, metrics: { time: 1, machine: 2, line: 3, _field: 4, temp_c: 5, time_: 6, Time: 7, time__: 8 } };
    // time_ and time__ are metrics of their own: each takes one more `_`, so none lands on another's key.
    expect(readingToLine(r, { line: 'l1' })).toBe('telemetry,line=l1,machine=m1 time_=1,machine_=2,line_=3,_field_=4,temp_c=5,time__=6,Time=7,time___=8 5');
    const lines = new TelemetryLines(() => ({ line: 'l1' }));
    expect(lines.encode([r]).toString('utf8')).toBe(readingToLine(r, { line: 'l1' }));
    // The key does not depend on the reading's other metrics.
    expect(lines.encode([{ machine: 'm1', ts: 6, metrics: { time: 8 } }]).toString('utf8')).toBe('telemetry,line=l1,machine=m1 time_=8 6');
    // One-to-one: every name comes back from its key, and no two names share a key.
    const names = ['time', 'time_', 'time__', 'machine', 'machine_', 'site', 'line', 'kind', 'kind___', '_measurement', '_measurement_', '_field', '__field', 'temp_c', 'times', 'time_x', '_', '__', 'Time_', 'x_'];
    const keys = names.map((n) => telemetryFieldKey(n));
    expect(new Set(keys).size).toBe(names.length);
    for (const n of names) expect(metricOfFieldKey(telemetryFieldKey(n))).toBe(n);
    expect(keys.filter((k, i) => k !== names[i])).toEqual(['time_', 'time__', 'time___', 'machine_', 'machine__', 'site_', 'line_', 'kind_', 'kind____', '_measurement_', '_measurement__', '_field_']);
  });

  it('omits empty tags and refuses a point with no fields', () => {
    expect(formatPoint('m', { a: '' }, { v: { int: 3 } }, 5)).toBe('m v=3i 5');
    expect(() => formatPoint('m', {}, { v: Number.NaN }, 5)).toThrow();
  });
});

describeWithInfluxd('line protocol against a real InfluxDB', () => {
  let influx: Influxd;
  beforeAll(async () => {
    influx = await startInfluxd();
    await influx.createDatabase('lp');
  });
  afterAll(async () => influx?.stop());

  it('round-trips names with spaces, commas, equals, quotes, backslashes and unicode', async () => {
    const tags = { machine: 'm1', site: 'Halle 3, Süd=Ost', line: 'say "x"' };
    const fields = { 'temp c': 1.5, 'a,b=c': -2, 'ünï✓': 3e21, note: 'quote " and \\ backslash' };
    await influx.write(formatPoint('telemetry', tags, fields, 1700000000000), 'lp');
    const rows = await influx.query('SELECT * FROM telemetry', 'lp');
    expect(rows).toHaveLength(1);
    const r = rows[0] as Record<string, unknown>;
    expect(r.site).toBe('Halle 3, Süd=Ost');
    expect(r.line).toBe('say "x"');
    expect(r['temp c']).toBe(1.5);
    expect(r['a,b=c']).toBe(-2);
    expect(r['ünï✓']).toBe(3e21);
    expect(r.note).toBe('quote " and \\ backslash');
    expect(r.time).toBe('2023-11-14T22:13:20Z');
  });

  it('TelemetryLines.encode: InfluxDB reads back every value exactly (decimals and integers written digit by digit)', async () => {
    let seed = 11;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const t0 = 1700000000000;
    const readings: Reading[] = [];
    for (let i = 0; i < 2000; i++) {
      const k = i % 7;
      readings.push({
        machine: 'enc 1,ü',
        ts: t0 + i,
        metrics: { dec: Math.round((rnd() - 0.5) * 10 ** (i % 9) * 10 ** k) / 10 ** k, int: Math.round((rnd() - 0.5) * 2 ** (i % 54)), any: (rnd() - 0.5) * 10 ** ((i % 40) - 20) },
      });
    }
    await influx.write(new TelemetryLines(() => ({ site: 'Süd, 3' })).encode(readings).toString('utf8'), 'lp');
    const rows = await influx.query(`SELECT "dec", "int", "any", "site" FROM telemetry WHERE "machine" = 'enc 1,ü' ORDER BY time`, 'lp');
    expect(rows).toHaveLength(readings.length);
    // -0 is written as 0, as String(-0) writes it (and JSON, the outbox's format).
    const z = (v: number | undefined): number | undefined => (v === 0 ? 0 : v);
    rows.forEach((row, i) => {
      const r = readings[i] as Reading;
      expect([row.dec, row.int, row.any, Date.parse(row.time as string), row.site]).toEqual([z(r.metrics.dec), z(r.metrics.int), z(r.metrics.any), r.ts, 'Süd, 3']);
    });
  });
});
