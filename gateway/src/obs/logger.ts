import pino, { type Logger } from 'pino';

export type { Logger };

/** JSON lines by default; pretty when stdout is a terminal (or forced). Secrets are redacted by path. */
export function createLogger(level: string, pretty: 'auto' | 'always' | 'never'): Logger {
  const usePretty = pretty === 'always' || (pretty === 'auto' && process.stdout.isTTY === true);
  return pino({
    level,
    base: { service: 'smartops-gateway' },
    redact: { paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization', 'req.headers.authorization'], censor: '<redacted>' },
    ...(usePretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}

/**
 * At most one log line per key per interval; the lines in between are counted and the count is
 * reported with the next line, so a flood of bad messages cannot flood the log (or hide itself).
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
    private readonly maxKeys = 1000,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string, now = Date.now()): void {
    const e = this.last.get(key);
    if (e && now - e.at < this.intervalMs) {
      e.suppressed++;
      return;
    }
    if (!e && this.last.size >= this.maxKeys) this.last.clear();
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.logger.warn(suppressed > 0 ? { ...obj, suppressedSinceLast: suppressed } : obj, msg);
  }
}
