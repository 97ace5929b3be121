/**
 * What Grafana does to an InfluxQL query before sending it, reduced to what our dashboards use:
 * macros ($timeFilter, $__interval, $__interval_ms, $interval, $__from, $__to, $__range*) and
 * dashboard variables in the three syntaxes ($var, ${var}, [[var]]).
 *
 * Variable values follow Grafana's InfluxDB datasource (interpolateQueryExpr): a single-value
 * variable is inserted as-is with `\` and `'` escaped; a multi-value or include-All variable is
 * regex-escaped and joined as (a|b), because it is meant to be used as =~ /^$var$/.
 */

export interface TimeRange {
  /** epoch ms */
  from: number;
  to: number;
}

export interface VariableValue {
  /** Selected values (for "All": every value the variable query returned). */
  values: string[];
  multi: boolean;
  includeAll: boolean;
}

export interface InterpolationContext {
  range: TimeRange;
  /** Grafana's computed interval, e.g. "10s" (already max(panel min interval, auto interval)). */
  interval: string;
  variables: Record<string, VariableValue>;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function intervalToMs(interval: string): number {
  const m = /^(\d+)(ms|s|m|h|d|w)$/.exec(interval.trim());
  if (!m) throw new Error(`not a Grafana interval: "${interval}"`);
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

/** The larger of two intervals, as Grafana applies a panel's min interval. */
export function maxInterval(a: string, b: string | undefined): string {
  if (b === undefined || b === '') return a;
  return intervalToMs(b) > intervalToMs(a) ? b : a;
}

function escapeRegex(v: string): string {
  // Grafana's escapeRegex plus `/`, which would end an InfluxQL regex literal.
  return v.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');
}

function influxRegularEscape(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

function formatVariable(v: VariableValue): string {
  if (!v.multi && !v.includeAll) return influxRegularEscape(v.values[0] ?? '');
  if (v.values.length === 1) return escapeRegex(v.values[0] as string);
  return `(${v.values.map(escapeRegex).join('|')})`;
}

/** Substitute macros and variables. Throws on a `$name` that is neither, so a typo fails the test. */
export function interpolate(query: string, ctx: InterpolationContext): string {
  const intervalMs = intervalToMs(ctx.interval);
  const rangeMs = ctx.range.to - ctx.range.from;
  const builtins: Record<string, string> = {
    // Grafana renders an absolute range as epoch-ms literals.
    timeFilter: `time >= ${ctx.range.from}ms and time <= ${ctx.range.to}ms`,
    __interval: ctx.interval,
    interval: ctx.interval,
    __interval_ms: String(intervalMs),
    __from: String(ctx.range.from),
    __to: String(ctx.range.to),
    __range: `${Math.round(rangeMs / 1000)}s`,
    __range_s: String(Math.round(rangeMs / 1000)),
    __range_ms: String(rangeMs),
  };
  const resolve = (name: string, whole: string): string => {
    const b = builtins[name];
    if (b !== undefined) return b;
    const v = ctx.variables[name];
    if (v !== undefined) return formatVariable(v);
    throw new Error(`query uses ${whole}, which is neither a Grafana macro nor a dashboard variable`);
  };
  // ${name} and ${name:format}; [[name]]; $name (longest identifier, Grafana's own regex shape).
  return query.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) =>
    resolve((a ?? b ?? c) as string, whole),
  );
}
