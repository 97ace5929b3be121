/**
 * Collects every InfluxQL query of the committed dashboard JSON (panel targets, template variables,
 * annotations), runs it the way Grafana does (GET /query, epoch=ms) and checks the answer's shape
 * against the expectation declared next to the query in dashboards/src/dashboards.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { allDashboards } from '../../dashboards/src/dashboards.js';
import type { ColumnType, QueryExpectation } from '../../dashboards/src/grafana.js';
import { type InterpolationContext, type TimeRange, type VariableValue, interpolate, maxInterval } from './grafana-interpolate.js';

export const REPO = join(import.meta.dirname, '..', '..');
export const JSON_DIR = join(REPO, 'dashboards', 'json');

// ---- the committed JSON, as Grafana reads it (typed loosely: it is data from a file) ----------

export interface JsonTarget {
  refId?: string;
  query?: string;
  rawQuery?: boolean;
  resultFormat?: string;
  datasource?: { type?: string; uid?: string };
}
export interface JsonPanel {
  id?: number;
  type?: string;
  title?: string;
  interval?: string;
  datasource?: { type?: string; uid?: string };
  targets?: JsonTarget[];
  panels?: JsonPanel[];
}
export interface JsonVariable {
  name?: string;
  type?: string;
  query?: string;
  multi?: boolean;
  includeAll?: boolean;
  datasource?: { type?: string; uid?: string };
}
export interface JsonAnnotation {
  name?: string;
  query?: string;
  datasource?: { type?: string; uid?: string };
}
export interface JsonDashboard {
  uid?: string;
  title?: string;
  time?: { from?: string; to?: string };
  panels?: JsonPanel[];
  templating?: { list?: JsonVariable[] };
  annotations?: { list?: JsonAnnotation[] };
}

export function loadDashboards(): { file: string; dashboard: JsonDashboard }[] {
  return readdirSync(JSON_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(JSON_DIR, file), 'utf8')) as JsonDashboard }));
}

/** Every panel, including those nested in collapsed rows. */
export function allPanels(d: JsonDashboard): JsonPanel[] {
  const out: JsonPanel[] = [];
  const walk = (ps: JsonPanel[] | undefined) => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

// ---- InfluxDB answers -------------------------------------------------------------------------

export interface Series {
  name?: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

/** Exactly the request Grafana's InfluxQL datasource makes (v1 /query API, ms epochs). */
export async function runInfluxQL(url: string, db: string, q: string): Promise<Series[]> {
  const params = new URLSearchParams({ db, q, epoch: 'ms' });
  const res = await fetch(`${url}/query?${params.toString()}`);
  const body = (await res.json()) as { results?: { series?: Series[]; error?: string }[]; error?: string };
  if (!res.ok || body.error) throw new Error(`InfluxDB answered ${res.status}: ${body.error ?? JSON.stringify(body)}\nquery: ${q}`);
  const series: Series[] = [];
  for (const r of body.results ?? []) {
    if (r.error) throw new Error(`InfluxQL error: ${r.error}\nquery: ${q}`);
    series.push(...(r.series ?? []));
  }
  return series;
}

function typeOk(v: unknown, t: ColumnType): boolean {
  return t === 'number' ? typeof v === 'number' && Number.isFinite(v) : typeof v === 'string' && v.length > 0;
}

/** Problems with an answer (empty list = the panel shows what it should). */
export function shapeProblems(series: Series[], expect: QueryExpectation): string[] {
  const problems: string[] = [];
  const rows = series.reduce((n, s) => n + s.values.length, 0);
  const minRows = expect.minRows ?? 1;
  if (rows < minRows) problems.push(`returned ${rows} row(s), expected at least ${minRows}`);
  for (const [col, t] of Object.entries(expect.columns ?? {})) {
    const present = series.filter((s) => s.columns.includes(col));
    if (present.length === 0) {
      problems.push(`column "${col}" missing (got ${[...new Set(series.flatMap((s) => s.columns))].join(', ') || 'nothing'})`);
      continue;
    }
    const ok = present.some((s) => {
      const i = s.columns.indexOf(col);
      return s.values.some((row) => typeOk(row[i], t));
    });
    if (!ok) problems.push(`column "${col}" has no ${t} value`);
  }
  if (expect.columnPattern) {
    const re = new RegExp(expect.columnPattern.regex);
    const t = expect.columnPattern.type;
    const ok = series.some((s) =>
      s.columns.some((c, i) => re.test(c) && s.values.some((row) => typeOk(row[i], t))),
    );
    if (!ok) problems.push(`no column matching /${expect.columnPattern.regex}/ with a ${t} value`);
  }
  for (const tag of expect.tags ?? []) {
    const missing = series.filter((s) => !s.tags || !s.tags[tag]);
    if (missing.length > 0) problems.push(`${missing.length} series without tag "${tag}" (GROUP BY it)`);
  }
  return problems;
}

// ---- expectations from the source model ------------------------------------------------------

export interface Expectations {
  target(file: string, panelId: number, refId: string): QueryExpectation | undefined;
  annotation(file: string, name: string): QueryExpectation | undefined;
}

export function expectations(): Expectations {
  const model = allDashboards();
  return {
    target(file, panelId, refId) {
      return model[file]?.panels.find((p) => p.id === panelId)?.targets.find((t) => t.refId === refId)?.expect;
    },
    annotation(file, name) {
      return model[file]?.annotations.list.find((a) => a.name === name)?.expect;
    },
  };
}

// ---- running a whole dashboard ----------------------------------------------------------------

export interface QueryCheck {
  where: string;
  query: string;
  problems: string[];
  rows: number;
}

export interface RunOptions {
  url: string;
  db: string;
  range: TimeRange;
  /** Grafana's auto interval for this range (the panel's min interval still applies). */
  interval: string;
  /** Value to select for single-value variables when the variable query offers it. */
  prefer: Record<string, string>;
}

export async function checkDashboard(file: string, d: JsonDashboard, opts: RunOptions): Promise<QueryCheck[]> {
  const exp = expectations();
  const checks: QueryCheck[] = [];
  const variables: Record<string, VariableValue> = {};
  const baseCtx = (): InterpolationContext => ({ range: opts.range, interval: opts.interval, variables });

  // Variables first, in order (later ones may use earlier ones, as Grafana's chaining does).
  for (const v of d.templating?.list ?? []) {
    const name = v.name ?? '?';
    const where = `${file} variable $${name}`;
    const query = interpolate(v.query ?? '', baseCtx());
    const series = await runInfluxQL(opts.url, opts.db, query);
    // SHOW TAG VALUES answers columns [key, value]; Grafana takes `value` (else the first column).
    const values = series.flatMap((s) => {
      const i = s.columns.includes('value') ? s.columns.indexOf('value') : 0;
      return s.values.map((row) => String(row[i]));
    });
    const problems = values.length === 0 ? ['variable query returned no values'] : [];
    checks.push({ where, query, problems, rows: values.length });
    const preferred = opts.prefer[name];
    const selected = v.multi || v.includeAll ? values : [preferred !== undefined && values.includes(preferred) ? preferred : (values[0] ?? '')];
    variables[name] = { values: selected, multi: v.multi ?? false, includeAll: v.includeAll ?? false };
  }

  for (const a of d.annotations?.list ?? []) {
    if (a.datasource?.type === 'grafana') continue; // built-in annotations query Grafana itself
    const where = `${file} annotation "${a.name}"`;
    const expect = exp.annotation(file, a.name ?? '');
    const query = interpolate(a.query ?? '', baseCtx());
    const series = await runInfluxQL(opts.url, opts.db, query);
    const problems = expect ? shapeProblems(series, expect) : ['no expectation declared in dashboards/src/dashboards.ts'];
    checks.push({ where, query, problems, rows: series.reduce((n, s) => n + s.values.length, 0) });
  }

  for (const p of allPanels(d)) {
    if (p.type === 'row') continue;
    for (const t of p.targets ?? []) {
      const where = `${file} panel ${p.id} "${p.title}" ${t.refId}`;
      const expect = exp.target(file, p.id ?? -1, t.refId ?? '');
      const ctx = { ...baseCtx(), interval: maxInterval(opts.interval, p.interval) };
      const query = interpolate(t.query ?? '', ctx);
      let problems: string[];
      let rows = 0;
      try {
        const series = await runInfluxQL(opts.url, opts.db, query);
        rows = series.reduce((n, s) => n + s.values.length, 0);
        problems = expect ? shapeProblems(series, expect) : ['no expectation declared in dashboards/src/dashboards.ts'];
      } catch (e) {
        problems = [(e as Error).message];
      }
      checks.push({ where, query, problems, rows });
    }
  }
  return checks;
}
