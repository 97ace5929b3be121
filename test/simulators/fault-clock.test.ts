import { describe, expect, it } from 'vitest';
import { resolveRun } from '../../simulators/src/cli/simulate.js';
import { afterOperating, createFleet, FaultCourse, operatingMs, type SimReading, type WorkPattern } from '../../simulators/src/index.js';

const H = 3_600_000;
const MIN = 60_000;
// Friday 2025-03-07 12:00 UTC. A three-shift pump runs Monday 06:00 (+ up to 20 min) to Saturday 06:00.
const FRI_NOON = Date.parse('2025-03-07T12:00:00Z');
const SAT = Date.parse('2025-03-08T00:00:00Z');
const MON = Date.parse('2025-03-10T00:00:00Z');
const THREE_SHIFT: WorkPattern = { schedule: 'three-shift', jitterKey: 42, utcOffsetMinutes: 0 };

describe('fault clock: wear progresses with running time, not with the calendar', () => {
  it('running time over a weekend: Friday noon to Monday noon is 18 h of a three-shift week plus Monday morning', () => {
    // Friday 12:00-24:00 (12 h) + Saturday 00:00-06:00 (6 h) + Monday from 06:00-06:20 to 12:00.
    const ms = operatingMs(THREE_SHIFT, FRI_NOON, MON + 12 * H);
    expect(ms).toBeGreaterThanOrEqual(18 * H + 5 * H + 40 * MIN);
    expect(ms).toBeLessThanOrEqual(24 * H);
    expect(operatingMs(THREE_SHIFT, SAT + 6 * H, MON + 6 * H)).toBe(0);
    // 24 h of running from Friday noon: the 18 h before the weekend, then 6 h from Monday's start.
    const fail = afterOperating(THREE_SHIFT, FRI_NOON, 24 * H);
    expect(fail).toBeGreaterThanOrEqual(MON + 12 * H);
    expect(fail).toBeLessThanOrEqual(MON + 12 * H + 20 * MIN);
    expect(operatingMs(THREE_SHIFT, FRI_NOON, fail)).toBeCloseTo(24 * H, -1);
  });

  it('progress stands still while the machine is off shift, and matches the running-time share everywhere', () => {
    const c = new FaultCourse(FRI_NOON, afterOperating(THREE_SHIFT, FRI_NOON, 24 * H), THREE_SHIFT);
    expect(c.courseMs).toBeCloseTo(24 * H, -1);
    expect(c.progress(FRI_NOON)).toBe(0);
    expect(c.progress(SAT)).toBeCloseTo(0.5, 6);
    expect(c.progress(SAT + 6 * H)).toBeCloseTo(0.75, 6);
    expect(c.progress(SAT + 30 * H)).toBeCloseTo(0.75, 6);
    expect(c.progress(c.failureTs)).toBe(1);
    // Stepping forward (the simulator's use) and jumping around answer the same.
    const fresh = (ts: number): number => new FaultCourse(c.onsetTs, c.failureTs, THREE_SHIFT).progress(ts);
    let prev = 0;
    for (let ts = FRI_NOON; ts <= c.failureTs; ts += 17 * MIN) {
      const u = c.progress(ts);
      expect(u).toBeGreaterThanOrEqual(prev);
      expect(u).toBeCloseTo(fresh(ts), 9);
      prev = u;
    }
    expect(c.progress(SAT)).toBeCloseTo(0.5, 6);
  });

  it('the calendar clock and a continuous schedule progress linearly with time', () => {
    const cal = new FaultCourse(FRI_NOON, FRI_NOON + 24 * H, null);
    expect(cal.progress(SAT + 6 * H)).toBeCloseTo(0.75, 9);
    const cont: WorkPattern = { schedule: 'continuous', jitterKey: 1, utcOffsetMinutes: 0 };
    expect(afterOperating(cont, FRI_NOON, 24 * H)).toBe(FRI_NOON + 24 * H);
    expect(new FaultCourse(FRI_NOON, FRI_NOON + 24 * H, cont).progress(SAT + 6 * H)).toBeCloseTo(0.75, 9);
  });

  it('a wear fault that starts on a Friday fails on Monday while running (operating clock) instead of in the weekend stop (calendar)', () => {
    const run = (clock?: 'calendar'): { readings: SimReading[]; failureTs: number } => {
      const fleet = createFleet({
        machines: [{ id: 'p', kind: 'pump' }],
        seed: 2,
        startTs: FRI_NOON - 3 * H,
        stepMs: 60_000,
        faults: [{ machine: 'p', fault: 'bearing-wear', onsetTs: FRI_NOON, durationMs: 24 * H, ...(clock ? { clock } : {}) }],
      });
      const readings = [...fleet.readings({ untilTs: MON + 16 * H })];
      return { readings, failureTs: fleet.labels[0]?.failureTs as number };
    };
    const flowAt = (rs: SimReading[], ts: number): number => rs.find((r) => r.ts === ts)?.metrics.flow_l_min as number;
    const op = run();
    expect(op.failureTs).toBeGreaterThan(MON + 12 * H);
    expect(flowAt(op.readings, MON + 9 * H)).toBeGreaterThan(0); // running on Monday, fault at ~90 %
    expect(flowAt(op.readings, MON + 15 * H)).toBe(0); // tripped after its 24 h of running
    const cal = run('calendar');
    expect(cal.failureTs).toBe(FRI_NOON + 24 * H);
    expect(flowAt(cal.readings, MON + 9 * H)).toBe(0); // failed Saturday noon, stays stopped
  });

  it('sensor faults keep the calendar clock; the fleet option and a fault\'s own clock choose for wear faults', () => {
    const fleet = createFleet({
      machines: [{ id: 'p', kind: 'pump' }, { id: 'q', kind: 'pump' }],
      startTs: FRI_NOON,
      faultClock: 'calendar',
      faults: [
        { machine: 'p', fault: 'sensor-drift', onsetTs: FRI_NOON, durationMs: 24 * H },
        { machine: 'p', fault: 'imbalance', onsetTs: FRI_NOON, durationMs: 24 * H },
        { machine: 'q', fault: 'imbalance', onsetTs: FRI_NOON, durationMs: 24 * H, clock: 'operating' },
      ],
    });
    expect(fleet.labels.map((l) => l.clock)).toEqual(['calendar', 'calendar', 'operating']);
    expect(fleet.labels.map((l) => l.failureTs - l.onsetTs).slice(0, 2)).toEqual([24 * H, 24 * H]);
    expect(fleet.progress(2, SAT + 30 * H)).toBeCloseTo(0.75, 6);
    expect(fleet.progress(1, SAT + 6 * H)).toBeCloseTo(0.75, 9);
    expect(createFleet({ machines: [{ id: 'p', kind: 'pump' }], startTs: FRI_NOON, faults: [{ machine: 'p', fault: 'sensor-drift', onsetTs: FRI_NOON }] }).labels[0]?.clock).toBe('calendar');
  });

  it('refuses an unknown clock, naming it', () => {
    expect(() => createFleet({ machines: 1, startTs: FRI_NOON, faultClock: 'wall' as never })).toThrow(expect.objectContaining({ code: 'SIM_BAD_OPTION', message: expect.stringMatching(/faultClock: "wall"/) }));
    expect(() => createFleet({ machines: [{ id: 'p', kind: 'pump' }], startTs: FRI_NOON, faults: [{ machine: 'p', fault: 'imbalance', clock: 'wall' as never }] })).toThrow(
      expect.objectContaining({ code: 'SIM_BAD_FAULT_SPEC', message: expect.stringMatching(/clock "wall"/) }),
    );
    const base = { broker: 'mqtt://x', fault: [], speed: '1', qos: '1', batch: '1', maxInflight: '100', progress: false };
    expect(resolveRun({ ...base, faultClock: 'calendar' }, FRI_NOON).fleetOpts.faultClock).toBe('calendar');
    expect(() => resolveRun({ ...base, faultClock: 'wall' }, FRI_NOON)).toThrow(expect.objectContaining({ code: 'SIM_BAD_OPTION', message: expect.stringMatching(/--fault-clock wall/) }));
  });
});
