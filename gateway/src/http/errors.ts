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

/** Longest message a 5xx answer passes through: an upstream's error body can be a whole HTML page. */
const MAX_PUBLIC_MESSAGE = 500;

/**
 * A 5xx message fit for the HTTP answer: URLs lose their userinfo (`http://user:password@host`
 * becomes `http://host`), since a dependency's error may quote the URL it was given, and the text
 * is bounded. The gateway log keeps the original.
 */
export function publicMessage(message: string): string {
  const clean = message.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi, '$1');
  return clean.length > MAX_PUBLIC_MESSAGE ? `${clean.slice(0, MAX_PUBLIC_MESSAGE)}...` : clean;
}
