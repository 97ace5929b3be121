/**
 * Every panel query, template-variable query and annotation query of the committed dashboards,
 * with Grafana's macros and variables substituted, runs against a real influxd (1.x, the oldest
 * InfluxQL dialect we support) and must return data of the expected shape. A panel that returns
 * nothing fails.
 *
 * The data comes from `DATA_SOURCE` (test/dashboards/data-sources.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Influxd, describeWithInfluxd, startInfluxd } from '../helpers/influxd.js';
import { DATA_SOURCE, type FilledInflux } from './data-sources.js';
import { checkDashboard, loadDashboards } from './panel-queries.js';

const dashboards = loadDashboards();

describeWithInfluxd('dashboard queries against a real InfluxDB', () => {
  let influxd: Influxd;
  let data: FilledInflux;

  beforeAll(async () => {
    influxd = await startInfluxd();
    data = await DATA_SOURCE(influxd);
    process.stderr.write(`[dashboards] data source: ${data.source}\n`);
  }, 600_000);

  afterAll(async () => {
    await data?.cleanup();
    await influxd?.stop();
  });

  it.each(dashboards)('$file: every query returns data of the expected shape', async ({ file, dashboard }) => {
    const checks = await checkDashboard(file, dashboard, {
      url: influxd.url,
      db: data.db,
      range: data.range,
      interval: data.interval,
      prefer: data.prefer,
    });
    expect(checks.length).toBeGreaterThan(0);
    const failures = checks.filter((c) => c.problems.length > 0).map((c) => `${c.where}: ${c.problems.join('; ')}\n    ${c.query}`);
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('the check is not vacuous: on an empty database every panel fails', async () => {
    const db = 'smartops_empty';
    await influxd.createDatabase(db);
    // Some data of another measurement, so variable queries run against a real (not missing) db.
    await influxd.write(`other,machine=m1 v=1 ${data.range.to - 1000}`, db);
    for (const { file, dashboard } of dashboards) {
      const checks = await checkDashboard(file, dashboard, { url: influxd.url, db, range: data.range, interval: data.interval, prefer: {} });
      const passing = checks.filter((c) => c.problems.length === 0).map((c) => c.where);
      expect(passing, `${file}: these passed on an empty database`).toEqual([]);
    }
  });
});
