/**
 * Pieces both evaluation modes share (simulator runs in eval.ts, recorded CSV in csv-eval.ts): config
 * overrides from `--set`, and a tracker of the detection's conditions per machine.
 */
import type { ConditionEvent, WindowScore } from '../../gateway/src/contract/detection.js';
import { createDetection, detectionConfigSchema, type DetectionConfig } from '../../gateway/src/detect/index.js';

export type Detection = Awaited<ReturnType<typeof createDetection>>;

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1] as string] = value;
}

/** `--set a.b=1` overrides (for experiments); values parsed as JSON when possible. */
export function configFrom(sets: readonly string[], base: Record<string, unknown> = {}): DetectionConfig {
  const raw: Record<string, unknown> = structuredClone(base);
  for (const s of sets) {
    const i = s.indexOf('=');
    if (i < 0) throw new Error(`--set ${s}: expected path=value`);
    const v = s.slice(i + 1);
    let parsed: unknown = v;
    try {
      parsed = JSON.parse(v);
    } catch {
      /* plain string */
    }
    setPath(raw, s.slice(0, i), parsed);
  }
  return detectionConfigSchema.parse(raw);
}

export interface Opened {
  /** Window end at which the condition opened (the moment an alert would be raised). */
  raisedAt: number;
  event: ConditionEvent;
}

export interface Tracker {
  opens: Map<string, Opened[]>;
  /** Every active condition event (opens and updates). */
  events: Map<string, Opened[]>;
  clears: Map<string, number[]>;
  lastEnd: Map<string, number>;
  scoringFrom: Map<string, number>;
  lastScored: Map<string, number>;
}

export function track(det: Detection): Tracker {
  const t: Tracker = { opens: new Map(), events: new Map(), clears: new Map(), lastEnd: new Map(), scoringFrom: new Map(), lastScored: new Map() };
  det.on('score', (s: WindowScore) => {
    t.lastEnd.set(s.machine, s.windowEnd);
    if (s.phase === 'scoring') {
      if (!t.scoringFrom.has(s.machine)) t.scoringFrom.set(s.machine, s.windowEnd);
      t.lastScored.set(s.machine, s.windowEnd);
    }
  });
  det.on('condition', (e: ConditionEvent) => {
    const at = t.lastEnd.get(e.machine) ?? e.eventTs;
    if (e.active) {
      const ev = t.events.get(e.machine) ?? [];
      ev.push({ raisedAt: at, event: e });
      t.events.set(e.machine, ev);
      const list = t.opens.get(e.machine) ?? [];
      // An update of an open condition is not a new alert.
      const clears = t.clears.get(e.machine) ?? [];
      const lastOpen = list[list.length - 1];
      const isNew = !lastOpen || clears.some((c) => c > lastOpen.raisedAt);
      if (isNew) list.push({ raisedAt: at, event: e });
      t.opens.set(e.machine, list);
    } else {
      const c = t.clears.get(e.machine) ?? [];
      c.push(at);
      t.clears.set(e.machine, c);
    }
  });
  return t;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
