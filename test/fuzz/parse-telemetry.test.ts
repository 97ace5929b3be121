/**
 * Property-based fuzzing of the reading validator (a pure function): whatever bytes arrive, it
 * returns, never throws, and either accepts readings that satisfy every promise of the contract
 * or names a reason from REJECT_REASONS.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, NAME_PATTERN, REJECT_REASONS, parseTelemetry, plainSingle, singleSchema, type ContractLimits, type ParseResult } from '../../gateway/src/contract/reading.js';
import { deepArb, hostilePayloadArb, nearValidReadingArb, readingObjArb, topicArb, validPayloadArb } from './arbitraries.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);

function checkResult(r: ParseResult, limits: ContractLimits): void {
  if (!r.ok) {
    expect(REJECT_REASONS).toContain(r.reason);
    expect(typeof r.detail).toBe('string');
    expect(r.detail.length).toBeGreaterThan(0);
    return;
  }
  expect(r.readings.length).toBeGreaterThan(0);
  expect(r.readings.length).toBeLessThanOrEqual(limits.maxReadingsPerBatch);
  for (const x of r.readings) {
    expect(x.machine).toMatch(NAME_PATTERN);
    expect(Number.isInteger(x.ts)).toBe(true);
    expect(x.ts).toBeLessThanOrEqual(NOW + limits.maxFutureSkewMs);
    expect(x.ts).toBeGreaterThanOrEqual(NOW - limits.maxAgeMs);
    // Representable as a date: downstream code formats it (ISO strings, InfluxDB timestamps).
    expect(new Date(x.ts).toISOString()).toMatch(/^\d{4}-/);
    const names = Object.keys(x.metrics);
    expect(names.length).toBeGreaterThan(0);
    expect(names.length).toBeLessThanOrEqual(limits.maxMetricsPerReading);
    for (const n of names) {
      expect(n).toMatch(NAME_PATTERN);
      expect(Number.isFinite(x.metrics[n])).toBe(true);
    }
    if (x.seq !== undefined) expect(Number.isSafeInteger(x.seq)).toBe(true);
  }
}

function parseSafely(topic: string, payload: Buffer | string, limits: ContractLimits = DEFAULT_LIMITS): ParseResult {
  let r: ParseResult | undefined;
  expect(() => {
    r = parseTelemetry(topic, payload, NOW, limits);
  }).not.toThrow();
  return r as ParseResult;
}

describe('parseTelemetry under fuzzing', () => {
  it('never throws on hostile payloads and always accepts soundly or names a known reason', () => {
    fc.assert(
      fc.property(topicArb, hostilePayloadArb(NOW), (topic, payload) => {
        checkResult(parseSafely(topic, payload), DEFAULT_LIMITS);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts every payload valid by construction, keeping each metric exactly', () => {
    fc.assert(
      fc.property(validPayloadArb(NOW), (payload) => {
        const r = parseSafely('machines/m-1/telemetry', payload);
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const doc = JSON.parse(payload) as { readings?: { metrics: Record<string, number> }[]; metrics?: Record<string, number> };
        const sent = doc.readings ?? [doc as { metrics: Record<string, number> }];
        expect(r.readings.map((x) => x.metrics)).toEqual(sent.map((s) => Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v === 0 ? 0 : v]))));
      }),
      { numRuns: RUNS / 4 },
    );
  });

  it('never loses a metric silently: an accepted reading carries every metric name the publisher sent', () => {
    fc.assert(
      fc.property(nearValidReadingArb(NOW), (obj) => {
        const payload = JSON.stringify(obj);
        const r = parseSafely('machines/m-1/telemetry', payload);
        if (!r.ok) return;
        // JSON.parse keeps own keys such as "__proto__"; none may vanish between wire and reading.
        const sent = Object.keys((JSON.parse(payload) as { metrics: object }).metrics);
        expect(Object.keys(r.readings[0]?.metrics ?? {}).sort()).toEqual(sent.sort());
      }),
      { numRuns: RUNS },
    );
  });

  it("plainSingle (zod's verdict without zod) accepts only what singleSchema accepts, with the same values", () => {
    const check = (raw: unknown) => {
      // Through JSON, as the gateway sees it: own keys only, "__proto__" an own key too.
      const obj = JSON.parse(JSON.stringify(raw) ?? 'null') as unknown;
      const fast = plainSingle(obj);
      if (fast === undefined) return;
      const z = singleSchema.safeParse(obj);
      expect(z.success).toBe(true);
      if (!z.success) return;
      expect(fast.metrics).toBe(z.data.metrics);
      expect(Object.is(fast.ts, z.data.ts)).toBe(true);
      expect(Object.is(fast.seq, z.data.seq)).toBe(true);
    };
    fc.assert(fc.property(nearValidReadingArb(NOW), check), { numRuns: RUNS });
    fc.assert(fc.property(readingObjArb(NOW), check), { numRuns: RUNS });
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 3 }), check), { numRuns: RUNS / 4 });
    // Hand-picked edges: where zod refuses, plainSingle must leave it to zod.
    for (const text of ['{"metrics":{"a":1},"seq":9007199254740992}', '{"metrics":{"a":1},"seq":1.5}', '{"metrics":[1]}', '{"metrics":null}', '{"ts":null,"metrics":{"a":1}}', '{"metrics":{"a":1},"__proto__":1}', '{"ts":1}', '[{"metrics":{"a":1}}]']) {
      const obj = JSON.parse(text) as unknown;
      expect(singleSchema.safeParse(obj).success, text).toBe(false);
      expect(plainSingle(obj), text).toBeUndefined();
    }
  });

  it('plainSingle takes every reading valid by construction (the fast path is the common path)', () => {
    fc.assert(
      fc.property(validPayloadArb(NOW), (payload) => {
        const doc = JSON.parse(payload) as { readings?: unknown[] };
        for (const one of doc.readings ?? [doc]) expect(plainSingle(one)).toBe(one);
      }),
      { numRuns: RUNS / 4 },
    );
  });

  it('handles deep nesting and huge inputs within the payload limit', () => {
    fc.assert(
      fc.property(deepArb, (p) => {
        checkResult(parseSafely('machines/m-1/telemetry', p), DEFAULT_LIMITS);
      }),
      { numRuns: 200 },
    );
    const big = { ...DEFAULT_LIMITS, maxPayloadBytes: 16 * 1024 * 1024 };
    const deep = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    checkResult(parseSafely('machines/m-1/telemetry', deep, big), big);
    const wideBatch = JSON.stringify({ readings: Array.from({ length: 5000 }, () => ({ metrics: { a: 1 } })) });
    const r = parseSafely('machines/m-1/telemetry', wideBatch, big);
    expect(!r.ok && r.reason).toBe('too_many_readings');
    const manyMetrics = JSON.stringify({ metrics: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`m${i}`, i])) });
    const m = parseSafely('machines/m-1/telemetry', manyMetrics, big);
    expect(!m.ok && m.reason).toBe('too_many_metrics');
  });

  it('refuses a payload over the limit before parsing it', () => {
    const r = parseSafely('machines/m-1/telemetry', Buffer.alloc(DEFAULT_LIMITS.maxPayloadBytes + 1, 0x20));
    expect(!r.ok && r.reason).toBe('payload_too_large');
  });

  it('rejects timestamps beyond the representable date range as bad_timestamp, not by throwing', () => {
    for (const ts of [8.64e15 + 1, 9e15, 1e20, 1e308]) {
      const r = parseSafely('machines/m-1/telemetry', `{"ts":${ts},"metrics":{"a":1}}`);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(['bad_timestamp', 'timestamp_in_future']).toContain(r.reason);
    }
  });
});
