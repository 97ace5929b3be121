/**
 * Minimal typed builders for the Grafana dashboard JSON we ship (schemaVersion 39, Grafana 10.1+).
 *
 * Only what our three dashboards use is modelled. Every query carries an `expect` (the shape the
 * InfluxDB answer must have); `toJson` strips it, the tests in test/dashboards/ execute each query
 * against a real influxd and check the answer against it.
 */

/** The one provisioned datasource (dashboards/provisioning/datasources/influxdb.yaml). */
export const DATASOURCE_UID = 'smartops-influx';
export const DATASOURCE = { type: 'influxdb', uid: DATASOURCE_UID } as const;
export type DatasourceRef = typeof DATASOURCE;

export type ColumnType = 'number' | 'string';

/** What an InfluxQL answer must contain for the panel to show something meaningful. */
export interface QueryExpectation {
  /** Columns that must exist and hold at least one non-null value of that type. */
  columns?: Record<string, ColumnType>;
  /** At least one column whose name matches (for wildcard queries such as `mean(*)`). */
  columnPattern?: { regex: string; type: ColumnType };
  /** Tag keys every returned series must carry (the panel's alias or table uses them). */
  tags?: string[];
  /** Minimum number of rows over all series (default 1). */
  minRows?: number;
}

export interface InfluxTarget {
  refId: string;
  datasource: DatasourceRef;
  query: string;
  rawQuery: true;
  resultFormat: 'time_series' | 'table';
  alias?: string;
  expect: QueryExpectation;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Panel {
  id: number;
  type: 'timeseries' | 'stat' | 'table' | 'state-timeline' | 'bargauge' | 'gauge';
  title: string;
  description: string;
  datasource: DatasourceRef;
  gridPos: GridPos;
  /** Minimum `$__interval`, e.g. the 10 s cadence of the gateway's health points. */
  interval?: string;
  targets: InfluxTarget[];
  fieldConfig: { defaults: { [k: string]: Json }; overrides: Json[] };
  options: { [k: string]: Json };
  transformations?: Json[];
  links?: Json[];
}

export interface QueryVariable {
  name: string;
  label: string;
  type: 'query';
  datasource: DatasourceRef;
  query: string;
  definition: string;
  /** 1 = on dashboard load, 2 = on time range change. */
  refresh: 1 | 2;
  includeAll: boolean;
  multi: boolean;
  sort: 1;
  current: Record<string, never>;
  options: [];
  hide: 0;
  expect: { minValues: number };
}

export interface InfluxAnnotation {
  name: string;
  datasource: DatasourceRef;
  enable: true;
  iconColor: string;
  query: string;
  textColumn: string;
  tagsColumn: string;
  expect: QueryExpectation;
}

export interface Dashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  time: { from: string; to: string };
  refresh: string;
  panels: Panel[];
  templating: { list: QueryVariable[] };
  annotations: { list: InfluxAnnotation[] };
}

// ---------------------------------------------------------------------------------------------
// Targets and variables

export function influx(
  query: string,
  expect: QueryExpectation,
  opts: { refId?: string; alias?: string; format?: 'time_series' | 'table' } = {},
): InfluxTarget {
  const t: InfluxTarget = {
    refId: opts.refId ?? 'A',
    datasource: DATASOURCE,
    query,
    rawQuery: true,
    resultFormat: opts.format ?? 'time_series',
    expect,
  };
  if (opts.alias !== undefined) t.alias = opts.alias;
  return t;
}

export function queryVariable(
  name: string,
  label: string,
  query: string,
  opts: { includeAll?: boolean; multi?: boolean; refresh?: 1 | 2 } = {},
): QueryVariable {
  return {
    name,
    label,
    type: 'query',
    datasource: DATASOURCE,
    query,
    definition: query,
    refresh: opts.refresh ?? 2,
    includeAll: opts.includeAll ?? false,
    multi: opts.multi ?? false,
    sort: 1,
    current: {},
    options: [],
    hide: 0,
    expect: { minValues: 1 },
  };
}

// ---------------------------------------------------------------------------------------------
// Field config pieces

export type Thresholds = { color: string; value: number | null }[];

export function thresholds(steps: Thresholds): Json {
  return { mode: 'absolute', steps };
}

/** machine_status.status values, coloured and worded for the maintenance lead. */
export const STATUS_MAPPINGS: Json = [
  {
    type: 'value',
    options: {
      healthy: { text: 'Healthy', color: 'green', index: 0 },
      learning: { text: 'Learning baseline', color: 'blue', index: 1 },
      anomaly: { text: 'Anomaly', color: 'orange', index: 2 },
      alert: { text: 'Alert open', color: 'red', index: 3 },
      silent: { text: 'Silent', color: 'text', index: 4 },
    },
  },
];

export const SEVERITY_MAPPINGS: Json = [
  {
    type: 'value',
    options: {
      info: { text: 'info', color: 'blue', index: 0 },
      warning: { text: 'warning', color: 'orange', index: 1 },
      critical: { text: 'critical', color: 'red', index: 2 },
    },
  },
];

export const ALERT_STATE_MAPPINGS: Json = [
  {
    type: 'value',
    options: {
      open: { text: 'open', color: 'red', index: 0 },
      acknowledged: { text: 'acknowledged', color: 'orange', index: 1 },
      resolved: { text: 'resolved', color: 'green', index: 2 },
    },
  },
];

export function override(fieldName: string, properties: Record<string, Json>): Json {
  return {
    matcher: { id: 'byName', options: fieldName },
    properties: Object.entries(properties).map(([id, value]) => ({ id, value })),
  };
}

// ---------------------------------------------------------------------------------------------
// Panels. `id` and `gridPos` are assigned by `layout`.

type PanelInput = Omit<Panel, 'id' | 'type' | 'gridPos' | 'datasource' | 'fieldConfig' | 'options'> & {
  fieldConfig?: Partial<Panel['fieldConfig']>;
  options?: Panel['options'];
};

function panel(
  type: Panel['type'],
  p: PanelInput,
  defaults: { [k: string]: Json },
  options: { [k: string]: Json },
): Omit<Panel, 'id' | 'gridPos'> {
  return {
    type,
    ...p,
    datasource: DATASOURCE,
    fieldConfig: {
      defaults: { ...defaults, ...(p.fieldConfig?.defaults ?? {}) },
      overrides: p.fieldConfig?.overrides ?? [],
    },
    options: { ...options, ...(p.options ?? {}) },
  };
}

export function timeseries(p: PanelInput & { unit: string; min?: number }): Omit<Panel, 'id' | 'gridPos'> {
  const { unit, min, ...rest } = p;
  const defaults: { [k: string]: Json } = {
    unit,
    custom: {
      drawStyle: 'line',
      lineWidth: 1,
      fillOpacity: 10,
      showPoints: 'never',
      spanNulls: false,
      axisSoftMin: 0,
    },
    color: { mode: 'palette-classic' },
  };
  if (min !== undefined) defaults.min = min;
  return panel('timeseries', rest, defaults, {
    legend: { showLegend: true, displayMode: 'list', placement: 'bottom', calcs: [] },
    tooltip: { mode: 'multi', sort: 'desc' },
  });
}

export function stat(p: PanelInput & { unit: string; steps?: Thresholds; strings?: boolean }): Omit<Panel, 'id' | 'gridPos'> {
  const { unit, steps, strings, ...rest } = p;
  return panel(
    'stat',
    rest,
    {
      unit,
      color: { mode: 'thresholds' },
      thresholds: thresholds(steps ?? [{ color: 'green', value: null }]),
    },
    {
      // "/.*/" = all fields: a stat shows numeric fields only unless told otherwise.
      reduceOptions: { calcs: ['lastNotNull'], fields: strings ? '/.*/' : '', values: false },
      colorMode: 'background',
      graphMode: strings ? 'none' : 'area',
      textMode: 'auto',
      justifyMode: 'auto',
      orientation: 'auto',
      wideLayout: true,
      showPercentChange: false,
    },
  );
}

export function table(p: PanelInput): Omit<Panel, 'id' | 'gridPos'> {
  return panel(
    'table',
    p,
    { custom: { align: 'auto', cellOptions: { type: 'auto' }, inspect: false } },
    { showHeader: true, cellHeight: 'sm', footer: { show: false, reducer: ['sum'], countRows: false, fields: '' } },
  );
}

export function stateTimeline(p: PanelInput): Omit<Panel, 'id' | 'gridPos'> {
  return panel(
    'state-timeline',
    p,
    { color: { mode: 'thresholds' }, custom: { fillOpacity: 80, lineWidth: 0 } },
    {
      mergeValues: true,
      showValue: 'auto',
      alignValue: 'left',
      rowHeight: 0.9,
      legend: { showLegend: true, displayMode: 'list', placement: 'bottom' },
      tooltip: { mode: 'single', sort: 'none' },
    },
  );
}

export function barGauge(p: PanelInput & { unit: string; steps: Thresholds; max: number }): Omit<Panel, 'id' | 'gridPos'> {
  const { unit, steps, max, ...rest } = p;
  return panel(
    'bargauge',
    rest,
    { unit, min: 0, max, color: { mode: 'thresholds' }, thresholds: thresholds(steps) },
    {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      orientation: 'horizontal',
      displayMode: 'lcd',
      valueMode: 'color',
      showUnfilled: true,
      namePlacement: 'left',
      minVizWidth: 8,
      minVizHeight: 16,
    },
  );
}

export function gauge(p: PanelInput & { unit: string; steps: Thresholds; max: number }): Omit<Panel, 'id' | 'gridPos'> {
  const { unit, steps, max, ...rest } = p;
  return panel(
    'gauge',
    rest,
    { unit, min: 0, max, color: { mode: 'thresholds' }, thresholds: thresholds(steps) },
    { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, showThresholdMarkers: true, showThresholdLabels: false },
  );
}

/**
 * Place panels on Grafana's 24-column grid, one row of panels after another, and number them.
 * Each row is [height, [[width, panel], ...]].
 */
export function layout(rows: [number, [number, Omit<Panel, 'id' | 'gridPos'>][]][]): Panel[] {
  const out: Panel[] = [];
  let y = 0;
  let id = 1;
  for (const [h, cells] of rows) {
    let x = 0;
    for (const [w, p] of cells) {
      if (x + w > 24) throw new Error(`layout: row at y=${y} is wider than 24 columns ("${p.title}")`);
      out.push({ ...p, id: id++, gridPos: { x, y, w, h } });
      x += w;
    }
    y += h;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Serialisation

/** Key order of the JSON Grafana gets: what a person reading the file looks for first. */
export function toJson(d: Dashboard): Json {
  const strip = <T extends { expect: unknown }>(o: T): Omit<T, 'expect'> => {
    const { expect: _expect, ...rest } = o;
    return rest;
  };
  const json = {
    id: null,
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: d.tags,
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: d.time,
    timepicker: {},
    refresh: d.refresh,
    fiscalYearStartMonth: 0,
    liveNow: false,
    links: [
      { title: 'SmartOps dashboards', type: 'dashboards', tags: ['smartops'], asDropdown: true, includeVars: false, keepTime: true, icon: 'external link', targetBlank: false, tooltip: '', url: '' },
    ],
    annotations: { list: d.annotations.list.map(strip) },
    templating: { list: d.templating.list.map(strip) },
    panels: d.panels.map((p) => ({ ...p, targets: p.targets.map(strip) })),
  };
  // Round-trip drops undefined keys, so the committed JSON is exactly what JSON.parse gives back.
  return JSON.parse(JSON.stringify(json)) as Json;
}
