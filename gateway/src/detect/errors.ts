/** Errors raised by the detection module: a stable `code` plus a message naming what to fix. */
export type DetectErrorCode =
  | 'DETECT_CONFIG_INVALID'
  | 'DETECT_MANIFEST_NOT_FOUND'
  | 'DETECT_MANIFEST_INVALID'
  | 'DETECT_MODEL_NOT_FOUND'
  | 'DETECT_MODEL_LOAD_FAILED'
  | 'DETECT_MODEL_INPUT_MISMATCH'
  | 'DETECT_MODEL_OUTPUT_MISMATCH'
  | 'DETECT_MODEL_RUN_FAILED'
  | 'DETECT_STORE_FAILED'
  | 'DETECT_CLOSED';

export class DetectError extends Error {
  readonly code: DetectErrorCode;
  constructor(code: DetectErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'DetectError';
    this.code = code;
  }
}
