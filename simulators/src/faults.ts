import type { MachineKind } from './types.js';

/** Every fault type the simulator can inject. */
export const FAULT_TYPES = [
  'bearing-wear',
  'lubrication-loss',
  'imbalance',
  'misalignment',
  'clogged-filter',
  'cavitation',
  'belt-slip',
  'sensor-stuck',
  'sensor-dropout',
  'sensor-spikes',
  'sensor-drift',
] as const;
export type FaultType = (typeof FAULT_TYPES)[number];

/** Direction a channel moves under a fault (compared with the same machine without the fault, while running). */
export type Direction = 'up' | 'down';

/** Catalogue entry: what a fault is, where it applies and what it does to which channel. */
export interface FaultInfo {
  type: FaultType;
  /** mechanical/process faults end in a trip (the machine stops at failureTs); sensor faults do not. */
  category: 'mechanical' | 'process' | 'sensor';
  description: string;
  /** Machine kinds the fault applies to. */
  appliesTo: readonly MachineKind[];
  /** Default onset-to-failure time when a schedule gives none. */
  defaultDurationMs: number;
  /**
   * Channels that move, per kind, in the late phase (last fifth before failure), compared with the
   * healthy machine in the same operating state. Empty for sensor faults (they hit the chosen channel).
   */
  effects: Partial<Record<MachineKind, Readonly<Record<string, Direction>>>>;
}

const H = 3_600_000;
const ALL: readonly MachineKind[] = ['cnc', 'compressor', 'pump', 'conveyor'];

/** The fault library. Order is stable (eval iterates over it). */
export const FAULTS: Readonly<Record<FaultType, FaultInfo>> = {
  'bearing-wear': {
    type: 'bearing-wear',
    category: 'mechanical',
    description:
      'Rolling-element bearing spalling. Impacts first raise vibration kurtosis, RMS vibration grows slowly and then fast; ' +
      'temperature rises late; friction adds a little current. Kurtosis falls back somewhat near failure as damage spreads.',
    appliesTo: ALL,
    defaultDurationMs: 72 * H,
    effects: {
      cnc: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'up', bearing_temp_c: 'up' },
      compressor: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'up', oil_temp_c: 'up' },
      pump: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'up', bearing_temp_c: 'up' },
      conveyor: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'up', gearbox_temp_c: 'up' },
    },
  },
  'lubrication-loss': {
    type: 'lubrication-loss',
    category: 'mechanical',
    description:
      'Lubricant leaks or degrades: friction heat raises the bearing/oil/gearbox temperature ever faster, friction raises ' +
      'motor current, late metal contact adds vibration and impacts (kurtosis).',
    appliesTo: ALL,
    defaultDurationMs: 12 * H,
    effects: {
      cnc: { bearing_temp_c: 'up', motor_current_a: 'up', vibration_rms_mm_s: 'up', vibration_kurtosis: 'up' },
      compressor: { oil_temp_c: 'up', motor_current_a: 'up', vibration_rms_mm_s: 'up', vibration_kurtosis: 'up' },
      pump: { bearing_temp_c: 'up', motor_current_a: 'up', vibration_rms_mm_s: 'up', vibration_kurtosis: 'up' },
      conveyor: { gearbox_temp_c: 'up', motor_current_a: 'up', vibration_rms_mm_s: 'up', vibration_kurtosis: 'up' },
    },
  },
  imbalance: {
    type: 'imbalance',
    category: 'mechanical',
    description:
      'Rotor mass imbalance (lost balance weight, deposits, broken fan blade): a once-per-revolution force, so RMS ' +
      'vibration grows with speed squared while kurtosis falls towards that of a sine (periodic, not impulsive).',
    appliesTo: ['cnc', 'compressor', 'pump'],
    defaultDurationMs: 48 * H,
    effects: {
      cnc: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'down' },
      compressor: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'down' },
      pump: { vibration_rms_mm_s: 'up', vibration_kurtosis: 'down' },
    },
  },
  misalignment: {
    type: 'misalignment',
    category: 'mechanical',
    description:
      'Shaft/coupling misalignment: higher vibration (2x running speed), coupling and bearing heat, a few percent more current.',
    appliesTo: ['compressor', 'pump', 'conveyor'],
    defaultDurationMs: 48 * H,
    effects: {
      compressor: { vibration_rms_mm_s: 'up', oil_temp_c: 'up', motor_current_a: 'up' },
      pump: { vibration_rms_mm_s: 'up', bearing_temp_c: 'up', motor_current_a: 'up' },
      conveyor: { vibration_rms_mm_s: 'up', gearbox_temp_c: 'up', motor_current_a: 'up' },
    },
  },
  'clogged-filter': {
    type: 'clogged-filter',
    category: 'process',
    description:
      'A filter loads with dirt. CNC: coolant filter, coolant flow falls. Compressor: intake filter, less air per ' +
      'revolution, so it stays loaded longer (duty up, oil hotter) at a lower loaded current. Pump: suction strainer, ' +
      'suction pressure, flow, discharge pressure and current fall; near failure the pump starts to cavitate.',
    appliesTo: ['cnc', 'compressor', 'pump'],
    defaultDurationMs: 72 * H,
    effects: {
      cnc: { coolant_flow_l_min: 'down' },
      compressor: { duty_pct: 'up', oil_temp_c: 'up' },
      pump: {
        suction_pressure_bar: 'down',
        flow_l_min: 'down',
        discharge_pressure_bar: 'down',
        motor_current_a: 'down',
        vibration_rms_mm_s: 'up',
      },
    },
  },
  cavitation: {
    type: 'cavitation',
    category: 'process',
    description:
      'Net positive suction head falls (sinking tank level, throttled suction valve): suction pressure drops, then vapour ' +
      'bubbles collapse in the impeller: flow and current fall and fluctuate, vibration and kurtosis rise.',
    appliesTo: ['pump'],
    defaultDurationMs: 6 * H,
    effects: {
      pump: {
        suction_pressure_bar: 'down',
        flow_l_min: 'down',
        motor_current_a: 'down',
        vibration_rms_mm_s: 'up',
        vibration_kurtosis: 'up',
      },
    },
  },
  'belt-slip': {
    type: 'belt-slip',
    category: 'mechanical',
    description:
      'A worn or loose drive belt slips under load: the driven speed falls below what the motor turns, and the motor ' +
      'current falls and becomes erratic because less torque gets through (speed vs current mismatch).',
    appliesTo: ['cnc', 'conveyor'],
    defaultDurationMs: 24 * H,
    effects: {
      cnc: { spindle_speed_rpm: 'down', motor_current_a: 'down', spindle_load_pct: 'down' },
      conveyor: { belt_speed_m_min: 'down', motor_current_a: 'down' },
    },
  },
  'sensor-stuck': {
    type: 'sensor-stuck',
    category: 'sensor',
    description: 'The channel freezes at its value at onset (the machine keeps running).',
    appliesTo: ALL,
    defaultDurationMs: 1 * H,
    effects: {},
  },
  'sensor-dropout': {
    type: 'sensor-dropout',
    category: 'sensor',
    description:
      'The channel goes missing from readings, intermittently at first (loose connector) and always from failureTs on.',
    appliesTo: ALL,
    defaultDurationMs: 12 * H,
    effects: {},
  },
  'sensor-spikes': {
    type: 'sensor-spikes',
    category: 'sensor',
    description:
      'Single-sample spikes (EMI, loose contact), from about one an hour at onset to one a minute at failureTs.',
    appliesTo: ALL,
    defaultDurationMs: 12 * H,
    effects: {},
  },
  'sensor-drift': {
    type: 'sensor-drift',
    category: 'sensor',
    description:
      'Calibration drift: an offset that grows linearly to 20% of the channel\'s healthy span at failureTs and stays.',
    appliesTo: ALL,
    defaultDurationMs: 7 * 24 * H,
    effects: {},
  },
};

/** Channel a sensor fault hits when the schedule names none. */
export const DEFAULT_SENSOR_CHANNEL: Readonly<Record<MachineKind, Readonly<Record<'sensor-stuck' | 'sensor-dropout' | 'sensor-spikes' | 'sensor-drift', string>>>> = {
  cnc: {
    'sensor-stuck': 'vibration_rms_mm_s',
    'sensor-dropout': 'coolant_flow_l_min',
    'sensor-spikes': 'motor_current_a',
    'sensor-drift': 'bearing_temp_c',
  },
  compressor: {
    'sensor-stuck': 'discharge_pressure_bar',
    'sensor-dropout': 'vibration_rms_mm_s',
    'sensor-spikes': 'motor_current_a',
    'sensor-drift': 'oil_temp_c',
  },
  pump: {
    'sensor-stuck': 'flow_l_min',
    'sensor-dropout': 'vibration_rms_mm_s',
    'sensor-spikes': 'discharge_pressure_bar',
    'sensor-drift': 'bearing_temp_c',
  },
  conveyor: {
    'sensor-stuck': 'belt_speed_m_min',
    'sensor-dropout': 'vibration_rms_mm_s',
    'sensor-spikes': 'motor_current_a',
    'sensor-drift': 'gearbox_temp_c',
  },
};

export function isSensorFault(t: FaultType): t is 'sensor-stuck' | 'sensor-dropout' | 'sensor-spikes' | 'sensor-drift' {
  return FAULTS[t].category === 'sensor';
}

/** Fault types that apply to a machine kind, in FAULT_TYPES order. */
export function faultsForKind(kind: MachineKind): FaultType[] {
  return FAULT_TYPES.filter((t) => FAULTS[t].appliesTo.includes(kind));
}

/**
 * Physical effect levels of all active machine faults at one instant, read by the machine models.
 * Neutral values mean "healthy". Each model documents how it uses them.
 */
export interface Effects {
  /** Multiplies the machine's vibration RMS. */
  vibGain: number;
  /** Adds RMS vibration (mm/s) at full speed; models scale it by speed squared. */
  vibAdd: number;
  /** Added to vibration kurtosis while running (negative pulls towards a sine's 1.5). */
  kurtAdd: number;
  /** °C added to the primary temperature's steady state at full running (scaled by activity). */
  heat: number;
  /** Multiplies running motor current (friction). */
  currentGain: number;
  /** 0..1 restriction of the filter (coolant / intake / suction strainer). */
  clog: number;
  /** 0..1 loss of suction head (cavitation fault). */
  suctionLoss: number;
  /** 0..1 belt slip at full load. */
  slip: number;
  /** The machine has failed (tripped) and must stay stopped. */
  failed: boolean;
}

export function neutralEffects(): Effects {
  return { vibGain: 1, vibAdd: 0, kurtAdd: 0, heat: 0, currentGain: 1, clog: 0, suctionLoss: 0, slip: 0, failed: false };
}

export function resetEffects(e: Effects): void {
  e.vibGain = 1;
  e.vibAdd = 0;
  e.kurtAdd = 0;
  e.heat = 0;
  e.currentGain = 1;
  e.clog = 0;
  e.suctionLoss = 0;
  e.slip = 0;
  e.failed = false;
}

/**
 * Add one mechanical/process fault at progress u (0 at onset, 1 at failure) to `e`.
 * Curves are convex: faults are hard to see early and accelerate towards failure, like real wear.
 */
export function applyFault(e: Effects, type: FaultType, u: number): void {
  switch (type) {
    case 'bearing-wear': {
      // Kurtosis leads (impacts from a small spall), peaks around 60% and falls as damage spreads.
      const k = u < 0.6 ? u / 0.6 : 1 - (0.5 * (u - 0.6)) / 0.4;
      e.kurtAdd += 5.5 * k;
      e.vibGain *= 1 + 4 * Math.pow(u, 2.2);
      e.heat += 22 * Math.pow(u, 4);
      e.currentGain *= 1 + 0.04 * Math.pow(u, 3);
      break;
    }
    case 'lubrication-loss':
      e.heat += 40 * Math.pow(u, 1.5);
      e.currentGain *= 1 + 0.12 * u * u;
      e.vibGain *= 1 + 0.5 * Math.pow(u, 3);
      e.kurtAdd += 1.2 * Math.pow(u, 3);
      break;
    case 'imbalance':
      e.vibAdd += 4.5 * u;
      e.kurtAdd -= 1.3 * Math.min(1, 2 * u);
      e.heat += 2 * u;
      e.currentGain *= 1 + 0.015 * u;
      break;
    case 'misalignment':
      e.vibGain *= 1 + 1.8 * u;
      e.kurtAdd -= 0.3 * u;
      e.heat += 12 * u;
      e.currentGain *= 1 + 0.07 * u;
      break;
    case 'clogged-filter':
      e.clog = Math.max(e.clog, u * u);
      break;
    case 'cavitation':
      e.suctionLoss = Math.max(e.suctionLoss, u);
      break;
    case 'belt-slip':
      e.slip = Math.max(e.slip, 0.25 * Math.pow(u, 1.5));
      break;
    default:
      break; // sensor faults act on the output stage
  }
}
