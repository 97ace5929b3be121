import { SimError } from '../errors.js';

/** Print `error [CODE]: message` and exit 2 for expected errors; rethrow anything else. */
export function fail(e: unknown): never {
  if (e instanceof SimError) {
    process.stderr.write(`error [${e.code}]: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}

export function parsePositive(what: string, raw: string, integer = false): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new SimError('SIM_BAD_OPTION', `--${what} ${raw}: expected a ${integer ? 'whole ' : ''}number > 0`);
  }
  return n;
}

export function parseQos(raw: string): 0 | 1 {
  if (raw === '0') return 0;
  if (raw === '1') return 1;
  throw new SimError('SIM_BAD_OPTION', `--qos ${raw}: expected 0 or 1`);
}

/**
 * A status line on stderr: rewritten in place on a terminal every second, a plain line every
 * `plainEveryMs` otherwise (logs and CI stay readable).
 */
export class ProgressLine {
  private last = 0;
  private readonly tty = process.stderr.isTTY === true;
  constructor(
    private readonly enabled: boolean,
    private readonly plainEveryMs = 10_000,
  ) {}

  update(render: () => string, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.last < (this.tty ? 1000 : this.plainEveryMs)) return;
    this.last = now;
    const line = render();
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  done(): void {
    if (this.enabled && this.tty) process.stderr.write('\n');
  }
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
