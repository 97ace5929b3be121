/**
 * smartops-gateway simulators: physically plausible shop-floor machines with injected faults.
 *
 * In-process and fast (no MQTT): `createFleet` then `fleet.readings()` or `fleet.step()`.
 * Ground truth: `fleet.labels` (write with `labelsToJsonl`).
 * Fault catalogue: `FAULT_TYPES`, `FAULTS[type].appliesTo`, `faultsForKind(kind)`.
 *
 * @packageDocumentation
 */
export { MACHINE_KINDS, SCHEDULES } from './types.js';
export type { MachineKind, MetricSpec, ScheduleName, SimReading } from './types.js';
export {
  FAULT_TYPES,
  FAULTS,
  DEFAULT_SENSOR_CHANNEL,
  faultsForKind,
  isSensorFault,
} from './faults.js';
export type { FaultType, FaultInfo, Direction } from './faults.js';
export { MACHINE_KIND_INFO, channelsOf } from './machines/index.js';
export {
  createFleet,
  defaultMachines,
  scheduleFault,
  labelOf,
  labelsToJsonl,
  defaultFaultClock,
  DEFAULT_MIX,
} from './fleet.js';
export type { Fleet, FleetOptions, FaultRequest, FaultSchedule, FaultLabel, MachineInfo, MachineSpec } from './fleet.js';
export { FAULT_CLOCKS, FaultCourse, operatingMs, afterOperating } from './course.js';
export type { FaultClock, WorkPattern } from './course.js';
export { parseFaultSpec, loadScenario, scenarioSchema, scenarioFaults } from './scenario.js';
export type { Scenario } from './scenario.js';
export { parseDuration, parseTimePoint, formatDuration } from './duration.js';
export { Rng, hashSeed } from './prng.js';
export { SimError } from './errors.js';
export type { SimErrorCode } from './errors.js';
export {
  sanitizeMetricName,
  sanitizeHeaders,
  detectDelimiter,
  detectTimestamp,
  parseTimestampValue,
  planCsv,
  readCsvReadings,
} from './replay/csv.js';
export type { CsvPlan, CsvOptions, TimestampFormat, CsvStats, CsvRow } from './replay/csv.js';
