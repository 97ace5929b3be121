/** Error with a stable machine-readable code; the message names the bad field or value. */
export class SimError extends Error {
  readonly code: string;
  constructor(code: SimErrorCode, message: string) {
    super(message);
    this.name = 'SimError';
    this.code = code;
  }
}

export type SimErrorCode =
  | 'SIM_BAD_DURATION'
  | 'SIM_BAD_TIME'
  | 'SIM_BAD_FAULT_SPEC'
  | 'SIM_UNKNOWN_MACHINE'
  | 'SIM_UNKNOWN_KIND'
  | 'SIM_UNKNOWN_FAULT'
  | 'SIM_FAULT_NOT_APPLICABLE'
  | 'SIM_UNKNOWN_CHANNEL'
  | 'SIM_BAD_MACHINE_ID'
  | 'SIM_DUPLICATE_MACHINE'
  | 'SIM_BAD_OPTION'
  | 'SIM_BAD_SCENARIO'
  | 'REPLAY_BAD_CSV'
  | 'REPLAY_NO_TIMESTAMP'
  | 'REPLAY_NO_METRICS'
  | 'REPLAY_BAD_OPTION';
