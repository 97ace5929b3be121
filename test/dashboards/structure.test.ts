/**
 * Structure of the dashboards and the Grafana provisioning: what Grafana needs to load them
 * without a person clicking anything (stable uids, the datasource referenced by uid, titles,
 * queries, variables) and that the committed JSON is what dashboards/src/ generates.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { renderAll } from '../../dashboards/src/build.js';
import { DATASOURCE_UID } from '../../dashboards/src/grafana.js';
import { JSON_DIR, REPO, allPanels, loadDashboards } from './panel-queries.js';

const PROV = join(REPO, 'dashboards', 'provisioning');
const dashboards = loadDashboards();

const datasourceFileSchema = z.object({
  apiVersion: z.literal(1),
  datasources: z
    .array(
      z.object({
        name: z.string().min(1),
        uid: z.string().min(1),
        type: z.string(),
        access: z.literal('proxy'),
        url: z.string().min(1),
        jsonData: z.object({ version: z.string().optional(), dbName: z.string().optional(), httpMode: z.string().optional() }).passthrough(),
      }).passthrough(),
    )
    .min(1),
});

const providerFileSchema = z.object({
  apiVersion: z.literal(1),
  providers: z
    .array(
      z.object({
        name: z.string().min(1),
        type: z.literal('file'),
        folder: z.string().optional(),
        options: z.object({ path: z.string().min(1) }).passthrough(),
      }).passthrough(),
    )
    .min(1),
});

function yamlFiles(dir: string): { file: string; data: unknown }[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => ({ file: f, data: parseYaml(readFileSync(join(dir, f), 'utf8')) as unknown }));
}

/** Every `datasource` value anywhere in a JSON document, with its path. */
function datasourceRefs(node: unknown, path = '$'): { path: string; value: unknown }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => datasourceRefs(v, `${path}[${i}]`));
  if (node === null || typeof node !== 'object') return [];
  const out: { path: string; value: unknown }[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (k === 'datasource' || k === 'datasourceId' || k === 'datasourceUid') out.push({ path: `${path}.${k}`, value: v });
    else out.push(...datasourceRefs(v, `${path}.${k}`));
  }
  return out;
}

const MACROS = new Set(['timeFilter', '__interval', '__interval_ms', 'interval', '__from', '__to', '__range', '__range_s', '__range_ms']);

function variablesUsed(query: string): string[] {
  return [...query.matchAll(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g)].map((m) => (m[1] ?? m[2] ?? m[3]) as string).filter((n) => !MACROS.has(n));
}

describe('dashboard JSON', () => {
  it('there are the three dashboards, generated from dashboards/src (committed JSON is not stale)', () => {
    const rendered = renderAll();
    expect(dashboards.map((d) => d.file).sort()).toEqual(Object.keys(rendered).sort());
    for (const [file, text] of Object.entries(rendered)) {
      expect(readFileSync(join(JSON_DIR, file), 'utf8'), `${file} is stale: run npx tsx dashboards/src/build.ts`).toBe(text);
    }
  });

  it('uids are stable, valid and unique; titles are unique', () => {
    const uids = dashboards.map((d) => d.dashboard.uid);
    expect(uids).toEqual(['smartops-gateway-health', 'smartops-machine-detail', 'smartops-shop-floor']);
    for (const uid of uids) expect(uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(new Set(uids).size).toBe(uids.length);
    const titles = dashboards.map((d) => d.dashboard.title);
    expect(new Set(titles).size).toBe(titles.length);
  });

  it.each(dashboards)('$file: every datasource reference resolves to the provisioned uid (no numeric ids, no names)', ({ dashboard }) => {
    const refs = datasourceRefs(dashboard);
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) {
      expect(r.value, r.path).toEqual({ type: 'influxdb', uid: DATASOURCE_UID });
    }
    expect((dashboard as { id?: unknown }).id ?? null, 'dashboard id must be null for provisioning').toBeNull();
  });

  it.each(dashboards)('$file: every panel has a title, a description, queries, a unit and a place on the grid', ({ dashboard }) => {
    const panels = allPanels(dashboard).filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(0);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size, 'panel ids unique').toBe(ids.length);
    const cells = new Set<string>();
    for (const p of panels as (typeof panels[number] & {
      description?: string;
      gridPos?: { x: number; y: number; w: number; h: number };
      fieldConfig?: { defaults?: { unit?: string } };
    })[]) {
      const where = `panel ${p.id} "${p.title}"`;
      expect(p.title?.trim(), `${where}: title`).toBeTruthy();
      expect(p.description?.trim(), `${where}: description`).toBeTruthy();
      expect(p.targets?.length ?? 0, `${where}: targets`).toBeGreaterThan(0);
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, `${where}: refIds unique`).toBe(refIds.length);
      for (const t of p.targets ?? []) {
        expect(t.query?.trim(), `${where} ${t.refId}: query`).toBeTruthy();
        expect(t.rawQuery, `${where} ${t.refId}: raw InfluxQL`).toBe(true);
        expect(['time_series', 'table']).toContain(t.resultFormat);
        expect(t.query, `${where}: time-bounded`).toMatch(/\$timeFilter|time > now\(\) - \d+[smhdw]/);
      }
      if (p.type === 'timeseries' || p.type === 'stat' || p.type === 'bargauge' || p.type === 'gauge') {
        expect(p.fieldConfig?.defaults?.unit, `${where}: unit`).toBeTruthy();
      }
      const g = p.gridPos;
      expect(g, `${where}: gridPos`).toBeDefined();
      if (!g) continue;
      expect(g.x + g.w, `${where}: fits 24 columns`).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const key = `${x},${y}`;
          expect(cells.has(key), `${where}: overlaps another panel at ${key}`).toBe(false);
          cells.add(key);
        }
      }
    }
  });

  it.each(dashboards)('$file: every variable a query uses is defined, and every variable has a query', ({ dashboard }) => {
    const defined = new Map((dashboard.templating?.list ?? []).map((v) => [v.name, v]));
    for (const v of defined.values()) {
      expect(v.type).toBe('query');
      expect(v.query?.trim(), `$${v.name}: query`).toBeTruthy();
    }
    const queries = [
      ...allPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.query ?? '')),
      ...(dashboard.annotations?.list ?? []).map((a) => a.query ?? ''),
      ...(dashboard.templating?.list ?? []).map((v) => v.query ?? ''),
    ];
    for (const q of queries) {
      for (const name of variablesUsed(q)) expect(defined.has(name), `query uses $${name}, not defined: ${q}`).toBe(true);
    }
  });

  it('machine detail: `machine` comes from InfluxDB, alert annotations come from the alerts measurement', () => {
    const md = dashboards.find((d) => d.dashboard.uid === 'smartops-machine-detail')?.dashboard;
    const v = md?.templating?.list?.find((x) => x.name === 'machine');
    expect(v?.query).toBe('SHOW TAG VALUES FROM "telemetry" WITH KEY = "machine"');
    const ann = md?.annotations?.list ?? [];
    expect(ann.some((a) => /FROM "alerts"/.test(a.query ?? '') && /\$machine/.test(a.query ?? ''))).toBe(true);
  });

  it('sensible default time ranges and refresh', () => {
    for (const { dashboard } of dashboards) {
      const d = dashboard as { time?: { from?: string; to?: string }; refresh?: string };
      expect(d.time?.from).toMatch(/^now-\d+[mhd]$/);
      expect(d.time?.to).toBe('now');
      expect(d.refresh).toMatch(/^\d+[sm]$/);
    }
  });
});

describe('Grafana provisioning', () => {
  const dsFiles = yamlFiles(join(PROV, 'datasources'));
  const providerFiles = yamlFiles(join(PROV, 'dashboards'));
  const compose = parseYaml(readFileSync(join(REPO, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { volumes?: (string | { source?: string; target?: string })[]; environment?: Record<string, string> | string[] }>;
  };
  const grafanaMounts = (compose.services.grafana?.volumes ?? []).map((v) => {
    if (typeof v === 'string') {
      const [source = '', target = ''] = v.split(':');
      return { source, target };
    }
    return { source: v.source ?? '', target: v.target ?? '' };
  });
  /** Where a container path comes from on the host (bind mounts only), or undefined. */
  const hostPathOf = (containerPath: string): string | undefined => {
    for (const m of grafanaMounts) {
      if (!m.source.startsWith('.')) continue;
      const rel = posix.relative(m.target, containerPath);
      if (rel === '' || (!rel.startsWith('..') && !posix.isAbsolute(rel))) return resolve(REPO, m.source, rel);
    }
    return undefined;
  };

  it('the datasource file parses and provisions one InfluxQL datasource with the uid the dashboards use', () => {
    expect(dsFiles.length).toBe(1);
    const parsed = datasourceFileSchema.parse(dsFiles[0]?.data);
    const ds = parsed.datasources[0];
    expect(ds?.uid).toBe(DATASOURCE_UID);
    expect(ds?.type).toBe('influxdb');
    expect(ds?.jsonData.version).toBe('InfluxQL');
    expect(ds?.jsonData.dbName).toBeTruthy();
    // Settings come from the environment, so one file serves InfluxDB 1.x and 2.x.
    expect(ds?.url).toMatch(/^\$\{?[A-Z_]+\}?$/);
  });

  it('the dashboard provider parses and points at the folder holding the dashboard JSON', () => {
    expect(providerFiles.length).toBe(1);
    const parsed = providerFileSchema.parse(providerFiles[0]?.data);
    for (const p of parsed.providers) {
      const host = hostPathOf(p.options.path);
      expect(host, `docker-compose.yml mounts nothing at ${p.options.path} in the grafana service`).toBe(JSON_DIR);
    }
  });

  it('docker-compose mounts the provisioning folders where Grafana reads them', () => {
    expect(hostPathOf('/etc/grafana/provisioning/datasources')).toBe(join(PROV, 'datasources'));
    expect(hostPathOf('/etc/grafana/provisioning/dashboards')).toBe(join(PROV, 'dashboards'));
  });
});
