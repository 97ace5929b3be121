import { z } from 'zod';

/** Query time bound: epoch milliseconds or an ISO-8601 date-time. */
export const timeParam = z
  .string()
  .max(40)
  .transform((s, ctx) => {
    const n = /^\d+$/.test(s) ? Number(s) : Date.parse(s);
    if (!Number.isFinite(n)) {
      ctx.addIssue({ code: 'custom', message: 'expected epoch milliseconds or an ISO-8601 date-time' });
      return z.NEVER;
    }
    return n;
  });
