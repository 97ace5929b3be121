import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { FAULT_CLOCKS } from './course.js';
import { parseDuration, parseTimePoint } from './duration.js';
import { SimError } from './errors.js';
import { FAULT_TYPES, type FaultType } from './faults.js';
import type { FaultRequest } from './fleet.js';
import { MACHINE_KINDS, SCHEDULES } from './types.js';

const DURATION_RE = /^\d+(\.\d+)?(ms|min|s|m|h|d|w)?(\d+(\.\d+)?(ms|min|s|m|h|d|w))*$/;

/**
 * Parse a fault spec `<machine>:<fault>[/<channel>]@<onset>[+<duration-to-failure>]`.
 * Onset is a duration after the simulation start (`2h`, `90m`) or an absolute ISO-8601 time.
 * Examples: `cnc-03:bearing-wear@2h`, `pump-01:cavitation@30m+2h`,
 * `cnc-01:sensor-drift/bearing_temp_c@1d+3d`, `compressor-01:lubrication-loss@2025-03-03T08:00:00Z+6h`.
 */
export function parseFaultSpec(spec: string, now = Date.now()): FaultRequest {
  const bad = (why: string): SimError =>
    new SimError('SIM_BAD_FAULT_SPEC', `--fault "${spec}": ${why}; expected <machine>:<fault>[/<channel>]@<onset>[+<duration>], e.g. cnc-03:bearing-wear@2h+6h`);
  const at = spec.indexOf('@');
  if (at < 0) throw bad('missing @<onset>');
  const head = spec.slice(0, at);
  let when = spec.slice(at + 1);
  const colon = head.indexOf(':');
  if (colon <= 0) throw bad('missing <machine>:');
  const machine = head.slice(0, colon);
  let faultPart = head.slice(colon + 1);
  let channel: string | undefined;
  const slash = faultPart.indexOf('/');
  if (slash >= 0) {
    channel = faultPart.slice(slash + 1);
    faultPart = faultPart.slice(0, slash);
    if (!channel) throw bad('empty channel after /');
  }
  if (!(FAULT_TYPES as readonly string[]).includes(faultPart)) {
    throw new SimError('SIM_UNKNOWN_FAULT', `--fault "${spec}": unknown fault "${faultPart}" (known: ${FAULT_TYPES.join(', ')})`);
  }
  let durationMs: number | undefined;
  const plus = when.lastIndexOf('+');
  if (plus > 0 && DURATION_RE.test(when.slice(plus + 1))) {
    durationMs = parseDuration(when.slice(plus + 1), `--fault "${spec}" duration`);
    when = when.slice(0, plus);
  }
  const req: FaultRequest = { machine, fault: faultPart as FaultType };
  if (DURATION_RE.test(when)) req.onsetMs = parseDuration(when, `--fault "${spec}" onset`);
  else req.onsetTs = parseTimePoint(when, now, `--fault "${spec}" onset`);
  if (durationMs !== undefined) req.durationMs = durationMs;
  if (channel !== undefined) req.channel = channel;
  return req;
}

const durationText = z.string().refine((s) => DURATION_RE.test(s.trim()), { message: 'expected a duration such as 30m, 2h, 1d' });

const faultObject = z
  .object({
    machine: z.string().min(1).describe('Machine id'),
    fault: z.enum(FAULT_TYPES),
    onset: z.string().min(1).describe('Duration after start (2h) or ISO-8601 time'),
    duration: durationText.optional().describe('Onset to failure'),
    channel: z.string().optional().describe('Sensor faults: channel hit'),
    repairAfter: durationText.optional().describe('Healthy again this long after failure'),
  })
  .strict();

/** Scenario file (JSON or YAML). Every field is optional; command-line options override it. */
export const scenarioSchema = z
  .object({
    seed: z.number().int().optional(),
    start: z.string().optional().describe('now, -2h, ISO-8601 or epoch ms'),
    rate: z.number().positive().max(1000).optional().describe('Readings per second of simulated time per machine'),
    utcOffsetMinutes: z.number().int().min(-840).max(840).optional(),
    schedule: z.enum(SCHEDULES).optional(),
    faultClock: z.enum(FAULT_CLOCKS).optional().describe('What mechanical/process faults progress with: operating (running time, default) or calendar'),
    machines: z
      .union([
        z.number().int().min(1).max(100_000),
        z.array(z.object({ id: z.string().min(1), kind: z.enum(MACHINE_KINDS), schedule: z.enum(SCHEDULES).optional() }).strict()).min(1),
      ])
      .optional(),
    mix: z.partialRecord(z.enum(MACHINE_KINDS), z.number().min(0)).optional(),
    faults: z.array(z.union([z.string(), faultObject])).optional(),
  })
  .strict();
export type Scenario = z.infer<typeof scenarioSchema>;

/** Read and validate a scenario file; errors name the file and the bad key. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SimError('SIM_BAD_SCENARIO', `scenario ${path}: cannot read (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML 1.2 is a superset of JSON
  } catch (e) {
    throw new SimError('SIM_BAD_SCENARIO', `scenario ${path}: not valid YAML/JSON (${(e as Error).message})`);
  }
  const r = scenarioSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = deepestIssue(r.error.issues[0]);
    const key = issue ? issue.path.join('.') || '(root)' : '(root)';
    throw new SimError('SIM_BAD_SCENARIO', `scenario ${path}: ${key}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

type Issue = { path: PropertyKey[]; message: string; errors?: Issue[][] };

/** For a union mismatch, the branch issue that got furthest names the bad key best. */
function deepestIssue(issue: Issue | undefined, prefix: PropertyKey[] = []): { path: string[]; message: string } | undefined {
  if (!issue) return undefined;
  const path = [...prefix, ...issue.path];
  let best = { path: path.map(String), message: issue.message };
  for (const branch of issue.errors ?? []) {
    for (const sub of branch) {
      const d = deepestIssue(sub, path);
      if (d && d.path.length > best.path.length) best = d;
    }
  }
  return best;
}

/** Fault requests of a scenario (strings are fault specs). */
export function scenarioFaults(s: Scenario, now = Date.now()): FaultRequest[] {
  return (s.faults ?? []).map((f) => {
    if (typeof f === 'string') return parseFaultSpec(f, now);
    const req: FaultRequest = { machine: f.machine, fault: f.fault };
    const onset = f.onset.trim();
    if (DURATION_RE.test(onset)) req.onsetMs = parseDuration(onset, `faults ${f.machine}:${f.fault} onset`);
    else req.onsetTs = parseTimePoint(onset, now, `faults ${f.machine}:${f.fault} onset`);
    if (f.duration !== undefined) req.durationMs = parseDuration(f.duration, `faults ${f.machine}:${f.fault} duration`);
    if (f.channel !== undefined) req.channel = f.channel;
    if (f.repairAfter !== undefined) req.repairAfterMs = parseDuration(f.repairAfter, `faults ${f.machine}:${f.fault} repairAfter`);
    return req;
  });
}
