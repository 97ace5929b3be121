/**
 * fast-check generators for hostile and broken telemetry payloads, shared by the pure validator
 * fuzz test and the end-to-end MQTT fuzz test. Every payload is a string or raw bytes as a device
 * (or an attacker) could put on the wire.
 */
import fc from 'fast-check';

/** Names a metric or machine might be given: valid ones, line-protocol specials, unicode, prototype keys. */
export const nameArb: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
  fc.constantFrom(
    'temp_c',
    'a,b',
    'a b',
    'a=b',
    'a"b',
    "a'b",
    'a\\',
    '\\',
    'a\nb',
    'a\r\nb=1 2',
    'x,tag=1 field=2 3',
    '#comment',
    'température',
    '温度',
    '🔥',
    'e\u0301',
    '\u0000',
    '\u202e',
    '',
    'm'.repeat(65),
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
  ),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);

/** Values where a number belongs: finite numbers, extremes, and everything that is not a number. */
export const valueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: fc.integer() },
  fc.constantFrom(0, -0, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER + 2, 1e21, -1e-320),
  fc.constantFrom('1', '1.5', 'NaN', 'Infinity', '', 'hot', '0x10'),
  fc.constant(null),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }),
);

/** ts candidates: valid-ish, out of range, beyond the Date range, wrong types, odd ISO strings. */
export function tsArb(now: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: now - 3600_000, max: now }) },
    fc.integer({ min: now - 40 * 86400_000, max: now + 86400_000 }),
    fc.constantFrom(-1, 0, 1, 1e15, 8.64e15, 8.64e15 + 1, 9e15, 1e20, 1e308, Number.MAX_SAFE_INTEGER, 1.5e12 + 0.5),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.date({ min: new Date(now - 3600_000), max: new Date(now) , noInvalidDate: true }).map((d) => d.toISOString()),
    fc.constantFrom('2026-01-01', '2026-02-30T00:00:00Z', '2026-13-01T00:00:00Z', '9999-12-31T23:59:59.999999999+14:00', '0000-01-01T00:00Z', 'yesterday', '', ' '.repeat(64), '1e3'),
    fc.string({ maxLength: 80 }),
    fc.constant(null),
    fc.boolean(),
  );
}

/** A JSON object shaped like a reading, with hostile parts. */
export function readingObjArb(now: number): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      ts: tsArb(now),
      metrics: fc.oneof(
        { weight: 5, arbitrary: fc.dictionary(nameArb, valueArb, { minKeys: 0, maxKeys: 8 }) },
        fc.constant({}),
        fc.constant(null),
        fc.array(fc.integer(), { maxLength: 3 }),
        fc.string({ maxLength: 10 }),
      ),
      seq: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 5 })),
      extra: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: [] },
  );
}

/** A valid reading with exactly one hostile part, so the validator's later checks are reached too. */
export function nearValidReadingArb(now: number): fc.Arbitrary<Record<string, unknown>> {
  const base = fc.record({
    ts: fc.integer({ min: now - 3600_000, max: now - 1000 }),
    metrics: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/), fc.double({ noNaN: true, noDefaultInfinity: true }), { minKeys: 1, maxKeys: 4 }),
  });
  return fc.oneof(
    fc.tuple(base, tsArb(now)).map(([b, ts]) => ({ ...b, ts })),
    fc.tuple(base, nameArb, valueArb).map(([b, k, v]) => {
      const metrics: Record<string, unknown> = { ...b.metrics };
      // defineProperty: an own key even for "__proto__", as JSON.parse would make it.
      Object.defineProperty(metrics, k, { value: v, enumerable: true, configurable: true, writable: true });
      return { ...b, metrics };
    }),
    fc.tuple(base, fc.oneof(fc.integer(), fc.double(), fc.constantFrom(2 ** 53, -(2 ** 53), 1e300), fc.string({ maxLength: 5 }))).map(([b, seq]) => ({ ...b, seq })),
    fc.tuple(base, fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 1 })).map(([b, k, v]) => {
      const o: Record<string, unknown> = { ...b };
      Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
      return o;
    }),
  );
}

/** A payload that is valid by construction (so fuzz runs always interleave accepted messages). */
export function validPayloadArb(now: number): fc.Arbitrary<string> {
  const one = fc.record(
    {
      ts: fc.integer({ min: now - 3600_000, max: now - 1000 }),
      metrics: fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,15}$/), fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }), { minKeys: 1, maxKeys: 5 }),
    },
    { requiredKeys: ['metrics'] },
  );
  return fc.oneof(one.map((r) => JSON.stringify(r)), fc.array(one, { minLength: 1, maxLength: 5 }).map((rs) => JSON.stringify({ readings: rs })));
}

/** Text-level damage to a JSON document: truncation, NaN/Infinity tokens, duplicate keys, garbage. */
function mutateText(doc: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.nat({ max: Math.max(0, doc.length) }).map((n) => doc.slice(0, n)),
    fc.constantFrom('NaN', 'Infinity', '-Infinity', 'undefined', '1e999', '-1e999', '01', '.5', '0x1F', '1_000', 'true', '"\\ud800"').map((tok) =>
      doc.replace(/:(-?\d[\d.eE+-]*)/, `:${tok}`),
    ),
    fc.tuple(nameArb, valueArb, valueArb).map(([k, v1, v2]) =>
      // Duplicate keys: JSON.parse keeps the last one; both orders are tried.
      `{"metrics":{${JSON.stringify(k)}:${JSON.stringify(v1) ?? '1'},${JSON.stringify(k)}:${JSON.stringify(v2) ?? '2'}}}`,
    ),
    fc.constant(doc.replace('{', '{"metrics":{"dup":1},')),
    fc.tuple(fc.nat({ max: Math.max(0, doc.length) }), fc.string({ unit: 'binary', maxLength: 8 })).map(([i, s]) => doc.slice(0, i) + s + doc.slice(i)),
    fc.constant(`\ufeff${doc}`),
    fc.constant(`${doc}${doc}`),
  );
}

/** Deep nesting, at the payload root or inside a metric value. */
export const deepArb: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 1, max: 5000 }), fc.constantFrom('[', '{"a":'), fc.boolean(), fc.boolean())
  .map(([depth, open, inMetric, truncated]) => {
    const close = open === '[' ? ']' : '}';
    const inner = `${open.repeat(depth)}1${close.repeat(truncated ? Math.floor(depth / 2) : depth)}`;
    return inMetric ? `{"metrics":{"a":${inner}}}` : inner;
  });

/** Every kind of hostile payload, as a Buffer. */
export function hostilePayloadArb(now: number): fc.Arbitrary<Buffer> {
  const asText = (a: fc.Arbitrary<string>): fc.Arbitrary<Buffer> => a.map((s) => Buffer.from(s, 'utf8'));
  const structured = fc.oneof(
    readingObjArb(now).map((o) => JSON.stringify(o)),
    { weight: 3, arbitrary: nearValidReadingArb(now).map((o) => JSON.stringify(o)) },
    fc.array(fc.oneof(readingObjArb(now), nearValidReadingArb(now)), { maxLength: 4 }).map((rs) => JSON.stringify({ readings: rs })),
  );
  return fc.oneof(
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u)) },
    { weight: 4, arbitrary: asText(structured) },
    { weight: 3, arbitrary: asText(structured.chain(mutateText)) },
    { weight: 2, arbitrary: asText(validPayloadArb(now).chain(mutateText)) },
    { weight: 1, arbitrary: asText(deepArb) },
    { weight: 1, arbitrary: asText(fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v))) },
    { weight: 1, arbitrary: asText(fc.string({ unit: 'binary', maxLength: 200 })) },
  );
}

/** Topics a hostile publisher might use under machines/. */
export const topicArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constant('machines/fuzz-01/telemetry') },
  nameArb.filter((n) => n.length > 0 && !/[#+/\u0000]/.test(n)).map((n) => `machines/${n}/telemetry`),
  fc.constantFrom('machines/fuzz-01/status', 'machines//telemetry', 'machines/fuzz-01/telemetry/x', 'machines/a b/telemetry', 'machines/é/telemetry'),
);
