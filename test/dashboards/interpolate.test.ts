/** The Grafana substitution the query test relies on behaves like Grafana's InfluxDB datasource. */
import { describe, expect, it } from 'vitest';
import { interpolate, intervalToMs, maxInterval } from './grafana-interpolate.js';

const ctx = {
  range: { from: 1_700_000_000_000, to: 1_700_003_600_000 },
  interval: '10s',
  variables: {
    machine: { values: ["press-01's"], multi: false, includeAll: false },
    host: { values: ['gw-1', 'gw.2'], multi: true, includeAll: true },
  },
};

describe('interpolate', () => {
  it('expands time and interval macros', () => {
    expect(interpolate('WHERE $timeFilter GROUP BY time($__interval)', ctx)).toBe(
      'WHERE time >= 1700000000000ms and time <= 1700003600000ms GROUP BY time(10s)',
    );
    expect(interpolate('$__interval_ms ${__range_s} [[interval]]', ctx)).toBe('10000 3600 10s');
  });

  it('quotes single values and regex-joins multi values', () => {
    expect(interpolate(`"machine" = '$machine'`, ctx)).toBe(`"machine" = 'press-01\\'s'`);
    expect(interpolate('"host" =~ /^$host$/', ctx)).toBe('"host" =~ /^(gw-1|gw\\.2)$/');
    expect(interpolate('${machine}', ctx)).toBe("press-01\\'s");
  });

  it('refuses an unknown $name, so a typo in a dashboard fails the test', () => {
    expect(() => interpolate('WHERE $timefilter', ctx)).toThrow(/neither a Grafana macro nor a dashboard variable/);
  });

  it('applies a panel min interval like Grafana', () => {
    expect(intervalToMs('1m')).toBe(60_000);
    expect(maxInterval('2s', '10s')).toBe('10s');
    expect(maxInterval('1m', '10s')).toBe('1m');
    expect(maxInterval('5s', undefined)).toBe('5s');
  });
});
