import { describe, expect, it } from 'vitest';
import {
  channelsOf,
  createFleet,
  FAULT_TYPES,
  FAULTS,
  MACHINE_KINDS,
  type FaultType,
  type MachineKind,
  type SimReading,
} from '../../simulators/src/index.js';

const START = Date.parse('2025-03-03T00:00:00Z'); // a Monday
const H = 3_600_000;
const DAY = 24 * H;

function series(rs: readonly SimReading[], name: string): number[] {
  return rs.map((r) => r.metrics[name] as number);
}
function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function corr(a: readonly number[], b: readonly number[]): number {
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = (a[i] as number) - ma;
    const y = (b[i] as number) - mb;
    sab += x * y;
    saa += x * x;
    sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('healthy machines', () => {
  it('stay within every channel\'s healthy range over a simulated week (10 s steps, 12 machines)', () => {
    const fleet = createFleet({ machines: 12, seed: 11, startTs: START, stepMs: 10_000 });
    const ranges = new Map(fleet.machines.map((m) => [m.id, new Map(m.channels.map((c) => [c.name, c.healthy]))]));
    const out: string[] = [];
    const seen = new Map<string, { min: number; max: number }>();
    let n = 0;
    for (const r of fleet.readings({ untilTs: START + 7 * DAY })) {
      n++;
      const rr = ranges.get(r.machine)!;
      for (const [k, v] of Object.entries(r.metrics)) {
        const [lo, hi] = rr.get(k)!;
        const key = `${r.machine}.${k}`;
        const s = seen.get(key) ?? { min: v, max: v };
        s.min = Math.min(s.min, v);
        s.max = Math.max(s.max, v);
        seen.set(key, s);
        if ((v < lo || v > hi) && out.length < 10) out.push(`${key}=${v} at ${new Date(r.ts).toISOString()} outside [${lo}, ${hi}]`);
      }
    }
    expect(n).toBe(12 * 7 * 8640);
    expect(out).toEqual([]);
    // and the machines did work: every channel moved
    for (const [key, s] of seen) expect(s.max, key).toBeGreaterThan(s.min);
  });

  it('stay within range at 1 s steps over a working day, including start-up and shut-down transients', () => {
    const fleet = createFleet({ machines: 12, seed: 12, startTs: START + 5 * H, stepMs: 1000 });
    let bad = 0;
    for (const r of fleet.readings({ untilTs: START + 23 * H })) {
      const m = fleet.machines.find((x) => x.id === r.machine)!;
      for (const c of m.channels) {
        const v = r.metrics[c.name] as number;
        if (v < c.healthy[0] || v > c.healthy[1]) bad++;
      }
    }
    expect(bad).toBe(0);
  });

  it('follow shifts: a two-shift CNC is stopped at night and on Sunday, busy mid-morning', () => {
    const fleet = createFleet({ machines: [{ id: 'cnc-01', kind: 'cnc' }], seed: 1, startTs: START, stepMs: 60_000 });
    const rs = [...fleet.readings({ untilTs: START + 7 * DAY })];
    const at = (from: number, to: number): SimReading[] => rs.filter((r) => r.ts >= from && r.ts < to);
    const running = (xs: SimReading[]): number => xs.filter((r) => (r.metrics.spindle_speed_rpm as number) > 0).length / xs.length;
    expect(running(at(START + 1 * H, START + 5 * H))).toBe(0); // Monday night
    expect(running(at(START + 6 * DAY, START + 7 * DAY))).toBe(0); // Sunday
    expect(running(at(START + 1 * DAY + 7 * H, START + 1 * DAY + 11 * H))).toBeGreaterThan(0.3); // Tuesday morning
  });

  it('current rises with load (CNC: spindle load; pump: flow)', () => {
    const fleet = createFleet({ machines: [{ id: 'cnc-01', kind: 'cnc' }, { id: 'pump-01', kind: 'pump' }], seed: 4, startTs: START + 7 * H, stepMs: 1000 });
    const rs = [...fleet.readings({ untilTs: START + 11 * H })];
    const cnc = rs.filter((r) => r.machine === 'cnc-01' && (r.metrics.spindle_speed_rpm as number) > 0);
    expect(corr(series(cnc, 'spindle_load_pct'), series(cnc, 'motor_current_a'))).toBeGreaterThan(0.9);
    const pump = rs.filter((r) => r.machine === 'pump-01' && (r.metrics.flow_l_min as number) > 50);
    expect(corr(series(pump, 'flow_l_min'), series(pump, 'motor_current_a'))).toBeGreaterThan(0.5);
  });

  it('temperature lags load (thermal inertia): best correlation with current minutes later, not at once', () => {
    const fleet = createFleet({ machines: [{ id: 'conveyor-01', kind: 'conveyor' }], seed: 2, startTs: START, stepMs: 60_000 });
    const rs = [...fleet.readings({ untilTs: START + 7 * DAY })];
    const cur = series(rs, 'motor_current_a');
    const temp = series(rs, 'gearbox_temp_c');
    const lagCorr = (k: number): number => corr(cur.slice(0, cur.length - k), temp.slice(k));
    let best = 0;
    for (let k = 0; k <= 120; k++) if (lagCorr(k) > lagCorr(best)) best = k;
    expect(best).toBeGreaterThanOrEqual(10); // minutes
    expect(best).toBeLessThanOrEqual(90);
    expect(lagCorr(best)).toBeGreaterThan(lagCorr(0) + 0.02);
  });

  it('two machines of one kind differ (machine-to-machine variation)', () => {
    const fleet = createFleet({ machines: [{ id: 'pump-01', kind: 'pump' }, { id: 'pump-02', kind: 'pump' }], seed: 3, startTs: START + 8 * H, stepMs: 10_000 });
    const rs = [...fleet.readings({ untilTs: START + 12 * H })];
    const m1 = mean(series(rs.filter((r) => r.machine === 'pump-01'), 'flow_l_min'));
    const m2 = mean(series(rs.filter((r) => r.machine === 'pump-02'), 'flow_l_min'));
    expect(Math.abs(m1 - m2)).toBeGreaterThan(5);
  });

  it('compressor pressure saw-tooths between load and unload set points while loaded/unloaded', () => {
    const fleet = createFleet({ machines: [{ id: 'compressor-01', kind: 'compressor' }], seed: 5, startTs: START + 9 * H, stepMs: 1000 });
    const rs = [...fleet.readings({ untilTs: START + 10 * H })];
    const p = series(rs, 'discharge_pressure_bar');
    const i = series(rs, 'motor_current_a');
    expect(Math.max(...p) - Math.min(...p.filter((x) => x > 5))).toBeGreaterThan(0.6);
    // loaded (high current) and unloaded (low current) both occur
    const iMax = Math.max(...i);
    expect(i.some((x) => x > 0.7 * iMax)).toBe(true);
    expect(i.some((x) => x > 0 && x < 0.5 * iMax)).toBe(true);
  });
});

/** Run one machine with and without a fault, continuously scheduled, 10 s steps. */
function twin(kind: MachineKind, fault: FaultType, seed: number, channel?: string) {
  const onsetTs = START + 2 * H;
  const failureTs = onsetTs + 20 * H;
  const base = { machines: [{ id: `${kind}-01`, kind, schedule: 'continuous' as const }], seed, startTs: START, stepMs: 10_000 };
  const req = { machine: `${kind}-01`, fault, onsetTs, failureTs, ...(channel ? { channel } : {}) };
  const healthy = [...createFleet(base).readings({ untilTs: failureTs + 2 * H })];
  const faulted = [...createFleet({ ...base, faults: [req] }).readings({ untilTs: failureTs + 2 * H })];
  return { healthy, faulted, onsetTs, failureTs };
}

const isRunning = (kind: MachineKind, r: SimReading): boolean => (r.metrics.motor_current_a ?? 0) > 0 && (kind !== 'compressor' || (r.metrics.motor_current_a as number) > 0);

const MECHANICAL = FAULT_TYPES.filter((t) => FAULTS[t].category !== 'sensor');
const cases = MECHANICAL.flatMap((fault) => FAULTS[fault].appliesTo.map((kind) => [fault, kind] as const));

describe('faults move the documented channels in the documented direction', () => {
  it.each(cases)('%s on %s', (fault, kind) => {
    const { healthy, faulted, onsetTs, failureTs } = twin(kind, fault, 21);
    const lateFrom = onsetTs + 0.8 * (failureTs - onsetTs);
    const late = (rs: SimReading[]): SimReading[] => rs.filter((r) => r.ts >= lateFrom && r.ts < failureTs && isRunning(kind, r));
    const h = late(healthy);
    const f = late(faulted);
    expect(h.length).toBeGreaterThan(100);
    expect(f.length).toBeGreaterThan(100);
    const specs = new Map(channelsOf(kind).map((c) => [c.name, c]));
    const effects = FAULTS[fault].effects[kind] ?? {};
    expect(Object.keys(effects).length).toBeGreaterThan(0);
    for (const [name, dir] of Object.entries(effects)) {
      const span = specs.get(name)!.healthy[1] - specs.get(name)!.healthy[0];
      const mh = mean(series(h, name));
      const diff = mean(series(f, name)) - mh;
      // at least 1.5% of the healthy running mean in the documented direction; the twins share jobs
      // and sensor noise, so the difference is the fault's doing
      const min = Math.max(0.015 * Math.abs(mh), 0.001 * span);
      if (dir === 'up') expect(diff, `${name} should rise`).toBeGreaterThan(min);
      else expect(diff, `${name} should fall`).toBeLessThan(-min);
    }
    // channels the fault does not name stay in their healthy range until failure
    const others = [...specs.values()].filter((c) => !(c.name in effects));
    for (const r of faulted.filter((x) => x.ts < failureTs)) {
      for (const c of others) {
        const v = r.metrics[c.name] as number;
        expect(v >= c.healthy[0] && v <= c.healthy[1], `${c.name}=${v} at +${(r.ts - START) / H}h`).toBe(true);
      }
    }
    // before onset the twins are identical
    expect(faulted.filter((r) => r.ts < onsetTs)).toEqual(healthy.filter((r) => r.ts < onsetTs));
  });

  it('mechanical failure trips the machine: it stops at failureTs and stays stopped', () => {
    const { faulted, failureTs } = twin('pump', 'bearing-wear', 3);
    const after = faulted.filter((r) => r.ts >= failureTs + 60_000);
    expect(after.length).toBeGreaterThan(100);
    expect(after.every((r) => r.metrics.flow_l_min === 0 && r.metrics.motor_current_a === 0)).toBe(true);
  });

  it('bearing wear: kurtosis leads, temperature comes late', () => {
    const { healthy, faulted, onsetTs, failureTs } = twin('cnc', 'bearing-wear', 8);
    const phase = (rs: SimReading[], a: number, b: number): SimReading[] =>
      rs.filter((r) => r.ts >= onsetTs + a * (failureTs - onsetTs) && r.ts < onsetTs + b * (failureTs - onsetTs) && (r.metrics.spindle_speed_rpm as number) > 0);
    const d = (name: string, a: number, b: number): number => mean(series(phase(faulted, a, b), name)) - mean(series(phase(healthy, a, b), name));
    expect(d('vibration_kurtosis', 0.4, 0.6)).toBeGreaterThan(2);
    expect(d('bearing_temp_c', 0.4, 0.6)).toBeLessThan(1.5);
    expect(d('bearing_temp_c', 0.9, 1)).toBeGreaterThan(3);
  });
});

describe('sensor faults', () => {
  it('stuck: the channel freezes at onset while the machine keeps running', () => {
    const { faulted, onsetTs } = twin('pump', 'sensor-stuck', 1);
    const after = faulted.filter((r) => r.ts >= onsetTs);
    expect(new Set(series(after, 'flow_l_min')).size).toBe(1);
    expect(new Set(series(after, 'motor_current_a')).size).toBeGreaterThan(10);
  });

  it('dropout: the channel goes missing more and more, always after failure; others stay', () => {
    const { faulted, onsetTs, failureTs } = twin('compressor', 'sensor-dropout', 1);
    const missing = (a: number, b: number): number => {
      const xs = faulted.filter((r) => r.ts >= a && r.ts < b);
      return xs.filter((r) => !('vibration_rms_mm_s' in r.metrics)).length / xs.length;
    };
    expect(missing(0, onsetTs)).toBe(0);
    expect(missing(onsetTs, onsetTs + 2 * H)).toBeLessThan(0.2);
    expect(missing(failureTs, failureTs + 2 * H)).toBe(1);
    expect(faulted.every((r) => 'oil_temp_c' in r.metrics)).toBe(true);
  });

  it('drift: an offset of about 20% of the healthy span at failure', () => {
    const { healthy, faulted, failureTs } = twin('conveyor', 'sensor-drift', 1);
    const win = (rs: SimReading[]): number[] => series(rs.filter((r) => r.ts >= failureTs - H && r.ts < failureTs), 'gearbox_temp_c');
    const span = 60 - 5;
    expect(mean(win(faulted)) - mean(win(healthy))).toBeGreaterThan(0.17 * span);
    expect(mean(win(faulted)) - mean(win(healthy))).toBeLessThan(0.21 * span);
  });

  it('spikes: isolated outliers become frequent towards failure', () => {
    const { healthy, faulted, onsetTs, failureTs } = twin('cnc', 'sensor-spikes', 1, 'motor_current_a');
    const spikes = (a: number, b: number): number => {
      let n = 0;
      for (let i = 0; i < faulted.length; i++) {
        const r = faulted[i] as SimReading;
        if (r.ts < a || r.ts >= b) continue;
        if (Math.abs((r.metrics.motor_current_a as number) - ((healthy[i] as SimReading).metrics.motor_current_a as number)) > 5) n++;
      }
      return n;
    };
    expect(spikes(0, onsetTs)).toBe(0);
    const early = spikes(onsetTs, onsetTs + 4 * H);
    const lateN = spikes(failureTs - 4 * H, failureTs);
    expect(lateN).toBeGreaterThan(early * 3);
    expect(lateN).toBeGreaterThan(20);
  });
});

describe('fault catalogue', () => {
  it('lists every type with the kinds it applies to, each documented channel exists for that kind', () => {
    for (const t of FAULT_TYPES) {
      const info = FAULTS[t];
      expect(info.appliesTo.length).toBeGreaterThan(0);
      for (const k of info.appliesTo) expect(MACHINE_KINDS).toContain(k);
      for (const [kind, eff] of Object.entries(info.effects)) {
        const names = channelsOf(kind as MachineKind).map((c) => c.name);
        for (const ch of Object.keys(eff ?? {})) expect(names).toContain(ch);
      }
    }
  });
});
