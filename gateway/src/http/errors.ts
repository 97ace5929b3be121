/** JSON error envelope of the HTTP API: `{ "error": { "code": "...", "message": "..." } }`. */
import type { FastifyReply } from 'fastify';

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } } satisfies ApiErrorBody);
}

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
