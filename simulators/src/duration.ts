import { SimError } from './errors.js';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

const PART_RE = /(\d+(?:\.\d+)?)(ms|min|s|m|h|d|w)/gy;

/**
 * Parse a duration such as `90s`, `15m`, `2h`, `1h30m`, `3d`, `1w`, `250ms`.
 * A bare number is seconds. Throws SIM_BAD_DURATION naming `what` on anything else.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  let total = 0;
  let pos = 0;
  PART_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PART_RE.exec(s)) !== null) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = PART_RE.lastIndex;
  }
  if (s.length === 0 || pos !== s.length) {
    throw new SimError('SIM_BAD_DURATION', `${what}: "${text}" is not a duration; use e.g. 90s, 15m, 2h, 1h30m, 3d`);
  }
  return Math.round(total);
}

const ISO_RE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parse a point in time: `now`, an ISO-8601 date-time, epoch milliseconds, or a signed offset
 * from `now` such as `-2h` / `+30m`.
 */
export function parseTimePoint(text: string, now: number, what = 'time'): number {
  const s = text.trim();
  if (s === 'now') return now;
  if (/^[+-]/.test(s)) {
    const d = parseDuration(s.slice(1), what);
    return s.startsWith('-') ? now - d : now + d;
  }
  if (/^\d{10,}$/.test(s)) return Number(s);
  if (ISO_RE.test(s)) {
    const ms = Date.parse(s);
    if (Number.isFinite(ms)) return ms;
  }
  throw new SimError('SIM_BAD_TIME', `${what}: "${text}" is not a time; use now, -2h, an ISO-8601 date-time or epoch ms`);
}

/** `1h 30m`-style rendering for progress lines and messages. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const neg = ms < 0;
  let rest = Math.abs(Math.round(ms / 1000));
  const d = Math.floor(rest / 86400);
  rest -= d * 86400;
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  const s = rest - m * 60;
  const parts: string[] = [];
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (s || parts.length === 0) parts.push(`${s}s`);
  return (neg ? '-' : '') + parts.join('');
}
