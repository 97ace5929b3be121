import { describe, expect, it } from 'vitest';
import { parseTelemetry, telemetryTopic } from '../../gateway/src/contract/reading.js';
import { createFleet, defaultMachines, labelsToJsonl, MACHINE_KINDS, Rng, type SimReading } from '../../simulators/src/index.js';

const START = Date.parse('2025-03-03T05:00:00Z'); // a Monday

function take(n: number, opts: Parameters<typeof createFleet>[0]): SimReading[] {
  return [...createFleet(opts).readings({ steps: n })];
}

describe('determinism', () => {
  it('same seed and options give identical readings', () => {
    const a = take(3000, { machines: 8, seed: 42, startTs: START });
    const b = take(3000, { machines: 8, seed: 42, startTs: START });
    expect(a.length).toBe(3000 * 8);
    expect(b).toEqual(a);
  });

  it('a different seed gives different readings', () => {
    const a = take(200, { machines: 4, seed: 1, startTs: START });
    const b = take(200, { machines: 4, seed: 2, startTs: START });
    expect(b).not.toEqual(a);
  });

  it('a machine behaves the same whatever else is in the fleet', () => {
    const solo = take(2000, { machines: [{ id: 'cnc-03', kind: 'cnc' }], seed: 9, startTs: START });
    const inFleet = take(2000, { machines: 12, seed: 9, startTs: START }).filter((r) => r.machine === 'cnc-03');
    expect(inFleet).toEqual(solo);
  });

  it('a fault changes nothing before its onset', () => {
    const onset = START + 3600_000;
    const healthy = take(3600, { machines: 12, seed: 5, startTs: START });
    const faulted = take(3600, {
      machines: 12,
      seed: 5,
      startTs: START,
      faults: [{ machine: 'cnc-02', fault: 'bearing-wear', onsetTs: onset, durationMs: 3600_000 }],
    });
    expect(faulted).toEqual(healthy);
  });

  it('readings are valid contract payloads with unit-suffixed names', () => {
    for (const r of take(50, { machines: 12, seed: 3, startTs: START })) {
      const parsed = parseTelemetry(telemetryTopic(r.machine), JSON.stringify({ ts: r.ts, metrics: r.metrics }), r.ts + 1000);
      expect(parsed.ok).toBe(true);
      for (const name of Object.keys(r.metrics)) expect(name).toMatch(/_(rpm|pct|a|c|mm_s|kurtosis|l_min|bar|m_min)$/);
    }
  });

  it('steps are evenly spaced, one reading per machine per step', () => {
    const f = createFleet({ machines: 5, seed: 1, startTs: START, stepMs: 250 });
    const s1 = f.step();
    const s2 = f.step();
    expect(s1.map((r) => r.machine)).toEqual(f.machines.map((m) => m.id));
    expect(new Set(s1.map((r) => r.ts))).toEqual(new Set([START]));
    expect(s2[0]?.ts).toBe(START + 250);
    expect(f.nextTs).toBe(START + 500);
  });

  it('labels describe the scheduled faults as JSON lines', () => {
    const f = createFleet({
      machines: 12,
      seed: 1,
      startTs: START,
      faults: [
        { machine: 'cnc-03', fault: 'bearing-wear', onsetMs: 7200_000, durationMs: 86_400_000, clock: 'calendar' },
        { machine: 'pump-01', fault: 'sensor-drift', onsetMs: 0 },
      ],
    });
    const lines = labelsToJsonl(f.labels).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({
      machine: 'cnc-03',
      kind: 'cnc',
      fault: 'bearing-wear',
      onsetTs: START + 7200_000,
      failureTs: START + 7200_000 + 86_400_000,
      metrics: ['vibration_rms_mm_s', 'vibration_kurtosis', 'bearing_temp_c'],
      clock: 'calendar',
      courseMs: 86_400_000,
    });
    expect(lines[1]).toMatchObject({ machine: 'pump-01', kind: 'pump', fault: 'sensor-drift', channel: 'bearing_temp_c', onsetTs: START });
  });

  it('default machine ids split the count by the mix, every kind present', () => {
    const ids = defaultMachines(12).map((m) => m.id);
    expect(ids).toEqual([
      'cnc-01', 'cnc-02', 'cnc-03', 'cnc-04', 'cnc-05',
      'compressor-01', 'compressor-02',
      'pump-01', 'pump-02', 'pump-03',
      'conveyor-01', 'conveyor-02',
    ]);
    expect(new Set(defaultMachines(4).map((m) => m.kind))).toEqual(new Set(MACHINE_KINDS));
  });

  it('rejects bad fault requests with a stable code naming the problem', () => {
    const mk = (fault: object): unknown => createFleet({ machines: 4, startTs: START, faults: [fault as never] });
    expect(() => mk({ machine: 'nope', fault: 'bearing-wear' })).toThrow(expect.objectContaining({ code: 'SIM_UNKNOWN_MACHINE' }));
    expect(() => mk({ machine: 'conveyor-01', fault: 'cavitation' })).toThrow(expect.objectContaining({ code: 'SIM_FAULT_NOT_APPLICABLE' }));
    expect(() => mk({ machine: 'cnc-01', fault: 'sensor-stuck', channel: 'flow_l_min' })).toThrow(expect.objectContaining({ code: 'SIM_UNKNOWN_CHANNEL' }));
    expect(() => mk({ machine: 'cnc-01', fault: 'bearing-wear', onsetMs: 10, durationMs: -5 })).toThrow(expect.objectContaining({ code: 'SIM_BAD_FAULT_SPEC' }));
  });

  it('the PRNG is uniform enough and normal() has unit variance', () => {
    const r = new Rng(123);
    let sum = 0;
    let sq = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      sum += x;
      sq += x * x;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.02);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.03);
  });
});
