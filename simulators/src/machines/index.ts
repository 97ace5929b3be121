import type { MachineKind, MetricSpec } from '../types.js';
import type { ChannelDef, MachineModel, MachineOptions } from './base.js';
import { CNC_CHANNELS, CncSpindle } from './cnc.js';
import { COMPRESSOR_CHANNELS, ScrewCompressor } from './compressor.js';
import { CONVEYOR_CHANNELS, GearConveyor } from './conveyor.js';
import { CentrifugalPump, PUMP_CHANNELS } from './pump.js';

const CHANNELS: Readonly<Record<MachineKind, readonly ChannelDef[]>> = {
  cnc: CNC_CHANNELS,
  compressor: COMPRESSOR_CHANNELS,
  pump: PUMP_CHANNELS,
  conveyor: CONVEYOR_CHANNELS,
};

/** Human description of each machine kind. */
export const MACHINE_KIND_INFO: Readonly<Record<MachineKind, { title: string; primaryTemp: string }>> = {
  cnc: { title: 'CNC milling machine spindle', primaryTemp: 'bearing_temp_c' },
  compressor: { title: 'Oil-injected screw air compressor (load/unload)', primaryTemp: 'oil_temp_c' },
  pump: { title: 'Centrifugal pump (fixed speed, throttled)', primaryTemp: 'bearing_temp_c' },
  conveyor: { title: 'Belt conveyor with VFD gear motor', primaryTemp: 'gearbox_temp_c' },
};

/** Published channels of a machine kind, in output order (name, unit, decimals, healthy range). */
export function channelsOf(kind: MachineKind): readonly MetricSpec[] {
  return CHANNELS[kind].map(({ name, unit, description, decimals, healthy }) => ({ name, unit, description, decimals, healthy }));
}

export function createMachine(kind: MachineKind, opts: MachineOptions): MachineModel {
  switch (kind) {
    case 'cnc':
      return new CncSpindle(opts);
    case 'compressor':
      return new ScrewCompressor(opts);
    case 'pump':
      return new CentrifugalPump(opts);
    case 'conveyor':
      return new GearConveyor(opts);
  }
}
