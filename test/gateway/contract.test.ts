import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, parseTelemetry, type ContractLimits } from '../../gateway/src/contract/reading.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const T = 'machines/press-01/telemetry';
const parse = (payload: string, topic = T, limits: ContractLimits = DEFAULT_LIMITS) => parseTelemetry(topic, Buffer.from(payload), NOW, limits);

describe('reading contract', () => {
  it('accepts a single reading with epoch ms, ISO and no ts', () => {
    const a = parse(JSON.stringify({ ts: NOW - 1000, metrics: { temp_c: 41.5, rpm: 1200 }, seq: 3 }));
    expect(a).toEqual({ ok: true, readings: [{ machine: 'press-01', ts: NOW - 1000, metrics: { temp_c: 41.5, rpm: 1200 }, seq: 3 }] });
    const b = parse(JSON.stringify({ ts: '2026-06-01T11:59:00.250Z', metrics: { x: -1e-9 } }));
    expect(b.ok && b.readings[0]?.ts).toBe(Date.parse('2026-06-01T11:59:00.250Z'));
    const c = parse(JSON.stringify({ metrics: { x: 0 } }));
    expect(c.ok && c.readings[0]).toEqual({ machine: 'press-01', ts: NOW, metrics: { x: 0 }, tsFromArrival: true });
  });

  it('ignores a UTF-8 byte order mark before the JSON (RFC 8259 section 8.1)', () => {
    const r = parseTelemetry(T, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"ts":1780315200000,"metrics":{"a":2}}')]), NOW);
    expect(r).toEqual({ ok: true, readings: [{ machine: 'press-01', ts: 1780315200000, metrics: { a: 2 } }] });
    // Only at the start: a BOM anywhere else is not JSON whitespace.
    expect(parse('{"metrics":\ufeff{"a":2}}')).toMatchObject({ ok: false, reason: 'invalid_json' });
  });

  it('says an empty payload is empty', () => {
    expect(parse('')).toEqual({ ok: false, reason: 'invalid_json', detail: 'payload is empty (0 bytes): send one JSON reading or a batch' });
  });

  it('accepts a batch', () => {
    const r = parse(JSON.stringify({ readings: [{ ts: NOW - 2, metrics: { a: 1 } }, { ts: NOW - 1, metrics: { a: 2 } }] }));
    expect(r.ok && r.readings.map((x) => x.metrics.a)).toEqual([1, 2]);
  });

  const bad: [string, string, string, string?][] = [
    ['bad_topic', 'wrong topic', '{"metrics":{"a":1}}', 'machines/x/status'],
    ['bad_topic', 'extra level', '{"metrics":{"a":1}}', 'machines/x/y/telemetry'],
    ['bad_machine_id', 'machine id with space', '{"metrics":{"a":1}}', 'machines/a b/telemetry'],
    ['bad_machine_id', 'machine id too long', '{"metrics":{"a":1}}', `machines/${'m'.repeat(65)}/telemetry`],
    ['invalid_json', 'truncated', '{"metrics":{"a":1}'],
    ['invalid_json', 'binary', '\u0000\u0001'],
    ['invalid_schema', 'array at root', '[1,2]'],
    ['invalid_schema', 'metrics missing', '{"ts":1}'],
    ['invalid_schema', 'unknown key', '{"metrics":{"a":1},"extra":true}'],
    ['invalid_schema', 'string value', '{"metrics":{"a":"1"}}'],
    ['invalid_schema', 'null value', '{"metrics":{"a":null}}'],
    ['invalid_schema', 'nested object value', '{"metrics":{"a":{"b":1}}}'],
    ['invalid_schema', 'seq not int', '{"metrics":{"a":1},"seq":1.5}'],
    ['invalid_schema', 'empty batch', '{"readings":[]}'],
    ['non_finite_value', 'huge number overflows to Infinity', '{"metrics":{"a":1e400}}'],
    ['bad_metric_name', 'metric with space', '{"metrics":{"a b":1}}'],
    ['bad_metric_name', 'metric with comma', '{"metrics":{"a,b":1}}'],
    ['empty_metrics', 'no metrics', '{"metrics":{}}'],
    ['bad_timestamp', 'garbage ts', '{"ts":"yesterday","metrics":{"a":1}}'],
    ['bad_timestamp', 'negative ts', '{"ts":-5,"metrics":{"a":1}}'],
    ['timestamp_in_future', 'far future', `{"ts":${NOW + 3600_000},"metrics":{"a":1}}`],
    ['timestamp_too_old', 'too old', `{"ts":${NOW - 40 * 86400_000},"metrics":{"a":1}}`],
  ];
  for (const [reason, what, payload, topic] of bad) {
    it(`rejects ${what} as ${reason}`, () => {
      const r = parse(payload, topic);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.reason).toBe(reason);
        expect(r.detail.length).toBeGreaterThan(5);
      }
    });
  }

  it('names the offending field in the detail', () => {
    const r = parse('{"readings":[{"metrics":{"a":1}},{"metrics":{"b":"x"}}]}');
    expect(!r.ok && r.detail).toBe('readings.1.metrics.b: expected a number, got string');
  });

  it('enforces configurable limits', () => {
    const limits = { ...DEFAULT_LIMITS, maxPayloadBytes: 100, maxReadingsPerBatch: 2, maxMetricsPerReading: 2 };
    expect(parse(JSON.stringify({ metrics: { a: 1, b: 2, c: 3 } }), T, limits)).toMatchObject({ ok: false, reason: 'too_many_metrics' });
    expect(parse(JSON.stringify({ readings: [{ metrics: { a: 1 } }, { metrics: { a: 1 } }, { metrics: { a: 1 } }] }), T, limits)).toMatchObject({ ok: false, reason: 'too_many_readings' });
    expect(parse(JSON.stringify({ metrics: { a: 1 }, pad: 'x'.repeat(200) }), T, limits)).toMatchObject({ ok: false, reason: 'payload_too_large' });
    const skew = { ...DEFAULT_LIMITS, maxFutureSkewMs: 1000 };
    expect(parse(`{"ts":${NOW + 2000},"metrics":{"a":1}}`, T, skew)).toMatchObject({ ok: false, reason: 'timestamp_in_future' });
    expect(parse(`{"ts":${NOW + 500},"metrics":{"a":1}}`, T, skew).ok).toBe(true);
  });

  it('names what a bad ts was', () => {
    const detail = (payload: string) => {
      const r = parse(payload);
      return r.ok ? '' : `${r.reason}: ${r.detail}`;
    };
    expect(detail(`{"ts":"${NOW}","metrics":{"a":1}}`)).toBe(`bad_timestamp: ts: "${NOW}" is not epoch milliseconds or an ISO-8601 date-time (a number in a string: send it as a JSON number)`);
    expect(detail('{"ts":"yesterday","metrics":{"a":1}}')).toBe('bad_timestamp: ts: "yesterday" is not epoch milliseconds or an ISO-8601 date-time');
    expect(detail('{"ts":null,"metrics":{"a":1}}')).toBe('invalid_schema: ts: expected epoch milliseconds (a JSON number) or an ISO-8601 date-time string, got null');
    expect(detail('{"ts":"","metrics":{"a":1}}')).toBe('bad_timestamp: ts: "" is not epoch milliseconds or an ISO-8601 date-time');
    expect(detail(`{"ts":"2026-06-01T12:00:00Z${'x'.repeat(100)}","metrics":{"a":1}}`)).toMatch(/^bad_timestamp: ts: "2026-06-01T12:00:00Zx{20}\.\.\." is not/);
    expect(detail('{"readings":[{"ts":true,"metrics":{"a":1}}]}')).toMatch(/^invalid_schema: readings\.0\.ts: .*, got boolean$/);
  });

  it('says when an out-of-range ts looks like seconds, microseconds or nanoseconds', () => {
    const detail = (ts: number) => {
      const r = parse(`{"ts":${ts},"metrics":{"a":1}}`);
      return r.ok ? '' : r.detail;
    };
    expect(detail(Math.floor(NOW / 1000))).toMatch(/ts: .* is older than .* \(it looks like epoch seconds: send epoch milliseconds/);
    expect(detail(NOW * 1000)).toMatch(/ahead of the gateway clock \(it looks like epoch microseconds/);
    expect(detail(NOW * 1e6)).toMatch(/\(it looks like epoch nanoseconds/);
    // out of range in every unit: no guess
    expect(detail(NOW - 40 * 86400_000)).not.toMatch(/looks like/);
  });

  it('says when an out-of-range ISO ts has no UTC offset (read in the gateway\'s time zone)', () => {
    // Three hours ahead in the gateway's own zone, written without an offset, as a PLC sending local time would.
    const d = new Date(NOW + 3 * 3600_000);
    const p2 = (n: number) => String(n).padStart(2, '0');
    const local = `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())}T${p2(d.getHours())}:${p2(d.getMinutes())}:00`;
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const r = parse(JSON.stringify({ ts: local, metrics: { a: 1 } }));
    expect(r).toMatchObject({ ok: false, reason: 'timestamp_in_future' });
    expect(!r.ok && r.detail).toContain(`(it has no UTC offset, so it was read in the gateway's time zone, ${zone}: send Z or +hh:mm`);
    // With an offset the reader knows the zone: no hint.
    const z = parse(JSON.stringify({ ts: new Date(NOW + 3 * 3600_000).toISOString(), metrics: { a: 1 } }));
    expect(!z.ok && z.detail).not.toContain('UTC offset');
  });

  it('rejects a batch whole when one reading is bad', () => {
    const r = parse(JSON.stringify({ readings: [{ metrics: { a: 1 } }, { metrics: {} }] }));
    expect(r).toMatchObject({ ok: false, reason: 'empty_metrics' });
  });
});
