import { hashUnit } from './prng.js';
import type { ScheduleName } from './types.js';

const DAY_MS = 86_400_000;

interface Span {
  start: number;
  end: number;
}
// Minutes of the day. In breaks the whole shop stops (machines idle, operators away).
const TWO_SHIFT_ON: Span = { start: 6 * 60, end: 22 * 60 };
const TWO_SHIFT_BREAKS: readonly Span[] = [
  { start: 9 * 60 + 30, end: 9 * 60 + 45 },
  { start: 12 * 60, end: 12 * 60 + 30 },
  { start: 18 * 60, end: 18 * 60 + 30 },
];
const ONE_SHIFT_ON: Span = { start: 7 * 60, end: 15 * 60 + 30 };
const ONE_SHIFT_BREAKS: readonly Span[] = [{ start: 12 * 60, end: 12 * 60 + 30 }];

/** Local calendar fields of an epoch-ms instant shifted by the site's UTC offset. */
export function localTime(ts: number, utcOffsetMinutes: number): { day: number; dow: number; minute: number } {
  const local = ts + utcOffsetMinutes * 60_000;
  const day = Math.floor(local / DAY_MS);
  const dow = (((day + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
  const minute = (local - day * DAY_MS) / 60_000;
  return { day, dow, minute };
}

/** The on-intervals (minutes of the local day) of one machine on one day. */
export function daySpans(schedule: ScheduleName, day: number, jitterKey: number): Span[] {
  const dow = (((day + 4) % 7) + 7) % 7;
  if (schedule === 'continuous') return [{ start: 0, end: 1440 }];
  if (schedule === 'three-shift') {
    // Monday 06:00 to Saturday 06:00 without breaks (crews relieve each other at the machine).
    if (dow >= 2 && dow <= 5) return [{ start: 0, end: 1440 }];
    if (dow === 1) return [{ start: 6 * 60 + hashUnit(jitterKey, day) * 20, end: 1440 }];
    if (dow === 6) return [{ start: 0, end: 6 * 60 }];
    return [];
  }
  if (dow === 0 || dow === 6) return [];
  const on = schedule === 'two-shift' ? TWO_SHIFT_ON : ONE_SHIFT_ON;
  const breaks = schedule === 'two-shift' ? TWO_SHIFT_BREAKS : ONE_SHIFT_BREAKS;
  // Operators are people: each machine starts a few minutes late and stops a few minutes early.
  let cursor = on.start + hashUnit(jitterKey, day, 'start') * 15;
  const end = on.end - hashUnit(jitterKey, day, 'stop') * 12;
  const spans: Span[] = [];
  for (const b of breaks) {
    const bj = hashUnit(jitterKey, day, b.start) * 4;
    spans.push({ start: cursor, end: b.start + bj });
    cursor = b.end + bj;
  }
  spans.push({ start: cursor, end });
  return spans;
}

/**
 * Whether the shop runs a machine at a given instant, for its schedule. Caches one day of spans,
 * so the per-step cost is a comparison or two.
 */
export class ShiftClock {
  private day = Number.NaN;
  private spans: Span[] = [];
  constructor(
    readonly schedule: ScheduleName,
    private readonly jitterKey: number,
  ) {}

  isOn(ts: number, utcOffsetMinutes: number): boolean {
    if (this.schedule === 'continuous') return true;
    const local = ts + utcOffsetMinutes * 60_000;
    const day = Math.floor(local / DAY_MS);
    if (day !== this.day) {
      this.day = day;
      this.spans = daySpans(this.schedule, day, this.jitterKey);
    }
    const minute = (local - day * DAY_MS) / 60_000;
    for (const s of this.spans) if (minute >= s.start && minute < s.end) return true;
    return false;
  }
}
