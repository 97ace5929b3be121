/** The `alerts` measurement as written through the injected writeInflux, read back from a real influxd. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SeriesClock } from '../../gateway/src/alerts/notify.js';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { cond, startAlerts, T0, type Harness } from './helpers.js';

describeWithInfluxd('alerts measurement in InfluxDB', () => {
  let influxd: Influxd;
  let h: Harness;
  beforeAll(async () => {
    influxd = await startInfluxd();
    await influxd.createDatabase('smartops');
  }, 60_000);
  afterAll(async () => {
    await h?.cleanup();
    await influxd?.stop();
  });

  it('writes one point per transition with the documented tags and fields', async () => {
    h = await startAlerts();
    h.engine.onCondition(
      cond({
        machine: 'press-1',
        message: 'Score 5 above "threshold", 3 = bad',
        contributors: [{ metric: 'a', feature: 'std', value: 2, baseline: 1, ratio: 2, text: 'a std 2x baseline, b=c' }],
      }),
    );
    const id = h.engine.list({ limit: 1 }).alerts[0]!.id;
    h.clock.t = T0 + 60_000;
    h.engine.ack(id, { who: 'Dana' });
    h.engine.onCondition(cond({ machine: 'press-1', active: false, eventTs: T0 + 120_000 }));
    expect(h.influx).toHaveLength(3);
    await influxd.write(h.influx.join('\n'), 'smartops');
    const rows = await influxd.query('SELECT * FROM alerts ORDER BY time', 'smartops');
    expect(rows.map((r) => [Date.parse(String(r.time)), r.event, r.state])).toEqual([
      [T0, 'opened', 'open'],
      [T0 + 60_000, 'acknowledged', 'acknowledged'],
      [T0 + 120_000, 'resolved', 'resolved'],
    ]);
    expect(rows[0]).toMatchObject({
      machine: 'press-1',
      kind: 'anomaly',
      severity: 'warning',
      id,
      message: 'Score 5 above "threshold", 3 = bad',
      score: 5,
      threshold: 3,
      contributors: 'a std 2x baseline, b=c',
    });
  });
});

describe('alert points never overwrite each other', () => {
  it('moves a same-millisecond transition of one series 1 ms on, leaves other series alone', () => {
    const c = new SeriesClock(2);
    expect(c.next('m1|anomaly|warning', 1000)).toBe(1000);
    expect(c.next('m1|anomaly|warning', 1000)).toBe(1001);
    expect(c.next('m1|anomaly|warning', 999)).toBe(1002);
    expect(c.next('m2|anomaly|warning', 1000)).toBe(1000);
    expect(c.next('m1|anomaly|warning', 5000)).toBe(5000);
  });
});
