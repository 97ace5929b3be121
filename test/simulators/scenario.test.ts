import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFleet, loadScenario, parseDuration, parseFaultSpec, scenarioFaults } from '../../simulators/src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sim-scn-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fault specs', () => {
  it('parses machine:fault[/channel]@onset[+duration]', () => {
    expect(parseFaultSpec('cnc-03:bearing-wear@2h')).toEqual({ machine: 'cnc-03', fault: 'bearing-wear', onsetMs: 7_200_000 });
    expect(parseFaultSpec('pump-01:cavitation@30m+2h')).toEqual({ machine: 'pump-01', fault: 'cavitation', onsetMs: 1_800_000, durationMs: 7_200_000 });
    expect(parseFaultSpec('cnc-01:sensor-drift/bearing_temp_c@1d+3d')).toMatchObject({ channel: 'bearing_temp_c', onsetMs: 86_400_000, durationMs: 3 * 86_400_000 });
    expect(parseFaultSpec('air-1:lubrication-loss@2025-03-03T08:00:00+01:00+6h')).toEqual({
      machine: 'air-1', fault: 'lubrication-loss', onsetTs: Date.parse('2025-03-03T07:00:00Z'), durationMs: 6 * 3_600_000,
    });
  });
  it('rejects bad specs with a code and the spec in the message', () => {
    expect(() => parseFaultSpec('cnc-03:bearing-wear')).toThrow(expect.objectContaining({ code: 'SIM_BAD_FAULT_SPEC' }));
    expect(() => parseFaultSpec('cnc-03:melting@1h')).toThrow(/unknown fault "melting"/);
    expect(() => parseFaultSpec('cnc-03:bearing-wear@soon')).toThrow(expect.objectContaining({ code: 'SIM_BAD_TIME' }));
  });
  it('parses durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('2 hours')).toThrow(expect.objectContaining({ code: 'SIM_BAD_DURATION' }));
  });
});

describe('scenario files', () => {
  it('loads the README example (YAML) into a working fleet', () => {
    const file = join(dir, 'scenario.yaml');
    writeFileSync(
      file,
      `seed: 7
start: -24h
rate: 1
utcOffsetMinutes: 60
schedule: two-shift
machines:
  - { id: cnc-01, kind: cnc }
  - { id: cnc-02, kind: cnc, schedule: three-shift }
  - { id: air-1, kind: compressor }
  - { id: coolant-pump, kind: pump, schedule: continuous }
faults:
  - cnc-02:bearing-wear@2h+12h
  - { machine: coolant-pump, fault: cavitation, onset: 6h, duration: 3h, repairAfter: 1h }
  - { machine: air-1, fault: sensor-drift, onset: 1h, channel: oil_temp_c }
`,
    );
    const s = loadScenario(file);
    const startTs = Date.parse('2025-03-03T00:00:00Z');
    const fleet = createFleet({ machines: s.machines ?? 1, seed: s.seed ?? 1, startTs, faults: scenarioFaults(s), utcOffsetMinutes: s.utcOffsetMinutes ?? 0 });
    expect(fleet.machines.map((m) => m.id)).toEqual(['cnc-01', 'cnc-02', 'air-1', 'coolant-pump']);
    expect(fleet.labels.map((l) => [l.machine, l.fault, l.onsetTs - startTs, l.clock, l.courseMs])).toEqual([
      ['cnc-02', 'bearing-wear', 7_200_000, 'operating', 43_200_000],
      ['coolant-pump', 'cavitation', 21_600_000, 'operating', 10_800_000],
      ['air-1', 'sensor-drift', 3_600_000, 'calendar', 7 * 86_400_000],
    ]);
    // Durations of wear faults are running time. cnc-02 runs three shifts: on Mondays from 06:00 local
    // (05:00 UTC here) plus up to 20 min, so 12 h of running after the 02:00 UTC onset end 15 h to 15 h 20 min later.
    const wear = (fleet.labels[0]?.failureTs ?? 0) - (fleet.labels[0]?.onsetTs ?? 0);
    expect(wear).toBeGreaterThanOrEqual(15 * 3_600_000);
    expect(wear).toBeLessThanOrEqual(15 * 3_600_000 + 20 * 60_000);
    // A continuously running pump and a sensor fault: running time = calendar time.
    expect(fleet.labels.slice(1).map((l) => l.failureTs - l.onsetTs)).toEqual([10_800_000, 7 * 86_400_000]);
    expect(fleet.labels[1]?.repairTs).toBe(startTs + 21_600_000 + 10_800_000 + 3_600_000);
    expect(fleet.step()).toHaveLength(4);
  });
  it('names the bad key of an invalid scenario', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ machines: [{ id: 'x', kind: 'lathe' }] }));
    expect(() => loadScenario(file)).toThrow(/bad\.json: machines\.0\.kind/);
    writeFileSync(file, JSON.stringify({ sped: 3 }));
    expect(() => loadScenario(file)).toThrow(expect.objectContaining({ code: 'SIM_BAD_SCENARIO' }));
  });
});
