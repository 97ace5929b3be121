/**
 * Coded errors (in the style of fastify's `lib/errors.js`): every error a person may see carries a
 * stable `code` they can search for, and a message that says what to change.
 */
export class GatewayError extends Error {
  readonly code: string;
  readonly statusCode: number;
  constructor(code: string, message: string, statusCode = 500, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = statusCode;
  }
}

export const ErrorCodes = {
  CONFIG_INVALID: 'SMARTOPS_CONFIG_INVALID',
  CONFIG_FILE: 'SMARTOPS_CONFIG_FILE',
  CONFIG_ENV: 'SMARTOPS_CONFIG_ENV',
  CONFIG_FLAG: 'SMARTOPS_CONFIG_FLAG',
  LISTEN_FAILED: 'SMARTOPS_LISTEN_FAILED',
  OUTBOX_FULL: 'SMARTOPS_OUTBOX_FULL',
  OUTBOX_CLOSED: 'SMARTOPS_OUTBOX_CLOSED',
  OUTBOX_WORKER: 'SMARTOPS_OUTBOX_WORKER',
  OUTBOX_WRITE: 'SMARTOPS_OUTBOX_WRITE',
  SINK_WRITE: 'SMARTOPS_SINK_WRITE',
  SINK_QUERY: 'SMARTOPS_SINK_QUERY',
} as const;
