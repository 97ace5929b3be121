import type { Reading } from '../../gateway/src/contract/reading.js';

/** The machine kinds the simulator models. */
export const MACHINE_KINDS = ['cnc', 'compressor', 'pump', 'conveyor'] as const;
export type MachineKind = (typeof MACHINE_KINDS)[number];

/** Work patterns; see README "Shifts". Times are local to the fleet's `utcOffsetMinutes`. */
export const SCHEDULES = ['one-shift', 'two-shift', 'three-shift', 'continuous'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

/** Description of one published channel of a machine kind. */
export interface MetricSpec {
  /** Published metric name (matches the contract's NAME_PATTERN; the suffix is the unit). */
  name: string;
  unit: string;
  description: string;
  /** Decimal places the sensor reports (quantisation step 10^-decimals). */
  decimals: number;
  /**
   * Range a healthy machine stays within in every operating state (off, start-up, running)
   * over the default ambient climate. Tests assert it; detectors may use it as plausibility limits.
   */
  healthy: readonly [min: number, max: number];
}

/** One simulated reading: the contract's Reading shape (machine, ts in epoch ms, metrics). */
export type SimReading = Pick<Reading, 'machine' | 'ts' | 'metrics'>;
