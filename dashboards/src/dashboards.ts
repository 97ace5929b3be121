/**
 * The three SmartOps dashboards. Every query is InfluxQL against the measurements the gateway writes
 * (see dashboards/README.md, "Data model"), so the same JSON works on InfluxDB 1.x and on 2.x/3.x
 * through their v1-compatible /query API.
 *
 * Rules the queries follow so they run on InfluxDB 1.6+ and 2.x alike: no subqueries, no
 * InfluxQL functions newer than 1.6, counters turned into rates with non_negative_derivative over
 * GROUP BY time buckets (fill(none) so gaps do not fake a zero rate).
 */
import {
  ALERT_STATE_MAPPINGS,
  type Dashboard,
  type InfluxAnnotation,
  type Json,
  DATASOURCE,
  SEVERITY_MAPPINGS,
  STATUS_MAPPINGS,
  barGauge,
  gauge,
  influx,
  layout,
  override,
  queryVariable,
  stat,
  stateTimeline,
  table,
  timeseries,
} from './grafana.js';

export const UIDS = {
  shopFloor: 'smartops-shop-floor',
  machine: 'smartops-machine-detail',
  gateway: 'smartops-gateway-health',
} as const;

/** The gateway writes `gateway` and `machine_status` points every 10 s: no finer bucket makes sense. */
const HEALTH_INTERVAL = '10s';
/** Open alerts and "the latest alert" look further back than the dashboard range: an alert opened
 * three days ago and still open must not vanish because the range is "last 6 hours". */
const ALERT_LOOKBACK = 'time > now() - 30d';

const machineLink = (labelExpr: string) => [
  {
    title: 'Machine detail',
    url: `/d/${UIDS.machine}/machine-detail?var-machine=${labelExpr}&\${__url_time_range}`,
  },
];

// ---------------------------------------------------------------------------------------------

export function shopFloor(): Dashboard {
  const panels = layout([
    [
      5,
      [
        [
          24,
          stat({
            title: 'Machine status',
            description:
              'Latest status per machine from machine_status: Healthy, Learning baseline (model still collecting normal data), Anomaly (score above threshold, no alert yet), Alert open, Silent (no readings recently). Click a tile for the machine detail.',
            unit: 'none',
            strings: true,
            targets: [
              influx(
                `SELECT last("status") AS "status" FROM "machine_status" WHERE $timeFilter GROUP BY "machine"`,
                { columns: { status: 'string' }, tags: ['machine'] },
                { alias: '$tag_machine' },
              ),
            ],
            fieldConfig: { defaults: { mappings: STATUS_MAPPINGS, links: machineLink('${__field.labels.machine}') } },
            options: { textMode: 'value_and_name', colorMode: 'background' },
          }),
        ],
      ],
    ],
    [
      7,
      [
        [
          12,
          barGauge({
            title: 'Anomaly score / threshold (now)',
            description:
              'Latest anomaly score divided by the machine\'s calibrated threshold. 1.0 is the threshold: above it the window is anomalous; an alert opens only when enough consecutive windows are above. Empty while a machine is still learning its baseline.',
            unit: 'none',
            max: 2,
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 0.8 },
              { color: 'red', value: 1 },
            ],
            targets: [
              influx(
                `SELECT last("score") / last("threshold") AS "ratio" FROM "machine_status" WHERE $timeFilter GROUP BY "machine"`,
                { columns: { ratio: 'number' }, tags: ['machine'] },
                { alias: '$tag_machine' },
              ),
            ],
            fieldConfig: { defaults: { decimals: 2, links: machineLink('${__field.labels.machine}') } },
          }),
        ],
        [
          6,
          stat({
            title: 'Readings per second',
            description: 'Readings accepted by the gateway per second (all machines), from the gateway\'s own health points.',
            unit: 'suffix: readings/s',
            interval: HEALTH_INTERVAL,
            targets: [
              influx(
                `SELECT non_negative_derivative(last("readings_accepted"), 1s) AS "readings_per_s" FROM "gateway" WHERE $timeFilter GROUP BY time($__interval) fill(none)`,
                { columns: { readings_per_s: 'number' } },
                { alias: 'readings/s' },
              ),
            ],
            fieldConfig: { defaults: { decimals: 1 } },
            options: { colorMode: 'none' },
          }),
        ],
        [
          6,
          stat({
            title: 'Open alerts',
            description: 'Alerts currently open or acknowledged (not yet resolved), as counted by the gateway.',
            unit: 'none',
            steps: [
              { color: 'green', value: null },
              { color: 'red', value: 1 },
            ],
            targets: [
              influx(`SELECT last("open_alerts") AS "open_alerts" FROM "gateway" WHERE $timeFilter`, {
                columns: { open_alerts: 'number' },
              }, { alias: 'open alerts' }),
            ],
            options: { graphMode: 'none' },
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          24,
          table({
            title: 'Open alerts',
            description:
              'The latest event of every alert (one per machine and kind) from the last 30 days, resolved ones hidden. Acknowledged alerts stay listed until they resolve.',
            targets: [
              influx(
                `SELECT "id", "state", "severity", "message", "score", "threshold", "contributors" FROM "alerts" WHERE ${ALERT_LOOKBACK} GROUP BY "machine", "kind" ORDER BY time DESC LIMIT 1`,
                { columns: { id: 'string', state: 'string', severity: 'string', message: 'string' }, tags: ['machine', 'kind'] },
                { format: 'table' },
              ),
            ],
            transformations: [
              {
                id: 'filterByValue',
                options: {
                  type: 'exclude',
                  match: 'any',
                  filters: [{ fieldName: 'state', config: { id: 'equal', options: { value: 'resolved' } } }],
                },
              },
              {
                id: 'organize',
                options: {
                  excludeByName: { id: true },
                  indexByName: { Time: 0, machine: 1, kind: 2, severity: 3, state: 4, message: 5, score: 6, threshold: 7, contributors: 8 },
                  renameByName: { Time: 'Since', contributors: 'Contributing metrics' },
                },
              },
            ],
            fieldConfig: {
              defaults: {},
              overrides: [
                override('severity', { mappings: SEVERITY_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('state', { mappings: ALERT_STATE_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('machine', { links: machineLink('${__value.raw}') }),
                override('score', { decimals: 2 }),
                override('threshold', { decimals: 2 }),
              ],
            },
            options: { sortBy: [{ displayName: 'Since', desc: true }] },
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          24,
          table({
            title: 'Machines',
            description:
              'One row per machine: status, latest anomaly score and threshold, baseline progress (share of the baseline collected while learning) and seconds since its last reading.',
            targets: [
              influx(
                `SELECT last("status") AS "status", last("score") AS "score", last("threshold") AS "threshold", last("baseline_progress") AS "baseline_progress", last("last_seen_age_s") AS "last_seen_age_s" FROM "machine_status" WHERE $timeFilter GROUP BY "machine"`,
                {
                  columns: { status: 'string', score: 'number', baseline_progress: 'number', last_seen_age_s: 'number' },
                  tags: ['machine'],
                },
                { format: 'table' },
              ),
            ],
            transformations: [
              {
                id: 'organize',
                options: {
                  excludeByName: { Time: true },
                  indexByName: { machine: 0, status: 1, score: 2, threshold: 3, baseline_progress: 4, last_seen_age_s: 5 },
                  renameByName: { baseline_progress: 'Baseline', last_seen_age_s: 'Last reading' },
                },
              },
            ],
            fieldConfig: {
              defaults: {},
              overrides: [
                override('status', { mappings: STATUS_MAPPINGS, 'custom.cellOptions': { type: 'color-background' } }),
                override('machine', { links: machineLink('${__value.raw}') }),
                override('score', { decimals: 2 }),
                override('threshold', { decimals: 2 }),
                override('Baseline', { unit: 'percentunit', 'custom.cellOptions': { type: 'gauge', mode: 'basic' }, min: 0, max: 1 }),
                override('Last reading', { unit: 's', decimals: 0 }),
              ],
            },
            options: { sortBy: [{ displayName: 'machine', desc: false }] },
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          24,
          stateTimeline({
            title: 'Status over time',
            description: 'Status of every machine over the selected range (one row per machine).',
            interval: HEALTH_INTERVAL,
            targets: [
              influx(
                `SELECT last("status") FROM "machine_status" WHERE $timeFilter GROUP BY time($__interval), "machine" fill(none)`,
                { columns: { last: 'string' }, tags: ['machine'], minRows: 2 },
                { alias: '$tag_machine' },
              ),
            ],
            fieldConfig: { defaults: { mappings: STATUS_MAPPINGS } },
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          24,
          timeseries({
            title: 'Anomaly score / threshold over time',
            description:
              'Highest anomaly score per interval divided by the threshold, per machine. The red line at 1.0 is the threshold.',
            unit: 'none',
            targets: [
              influx(
                `SELECT max("score") / max("threshold") AS "ratio" FROM "anomaly" WHERE $timeFilter GROUP BY time($__interval), "machine" fill(none)`,
                { columns: { ratio: 'number' }, tags: ['machine'], minRows: 2 },
                { alias: '$tag_machine' },
              ),
            ],
            fieldConfig: {
              defaults: {
                decimals: 2,
                thresholds: { mode: 'absolute', steps: [{ color: 'transparent', value: null }, { color: 'red', value: 1 }] },
                custom: {
                  drawStyle: 'line',
                  lineWidth: 1,
                  fillOpacity: 0,
                  showPoints: 'never',
                  spanNulls: false,
                  axisSoftMin: 0,
                  axisSoftMax: 1.5,
                  thresholdsStyle: { mode: 'line+area' },
                },
              },
            },
          }),
        ],
      ],
    ],
  ]);
  return {
    uid: UIDS.shopFloor,
    title: 'SmartOps: Shop floor overview',
    description: 'Every machine at a glance: status, anomaly score against threshold, open alerts, data rate.',
    tags: ['smartops'],
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    panels,
    templating: { list: [] },
    annotations: { list: [] },
  };
}

// ---------------------------------------------------------------------------------------------

export function machineDetail(): Dashboard {
  const M = `"machine" = '$machine'`;
  // The newest value of one field of the selected machine (the stat tiles in the top row).
  const lastOfMachine = (measurement: string, field: string, alias: string, type: 'number' | 'string' = 'number') =>
    influx(`SELECT last("${field}") AS "${field}" FROM "${measurement}" WHERE ${M} AND $timeFilter`, { columns: { [field]: type } }, { alias });
  const panels = layout([
    [
      4,
      [
        [
          5,
          stat({
            title: 'Status',
            description: 'Latest status of this machine from machine_status.',
            unit: 'none',
            strings: true,
            targets: [
              lastOfMachine('machine_status', 'status', 'status', 'string'),
            ],
            fieldConfig: { defaults: { mappings: STATUS_MAPPINGS } },
            options: { textMode: 'value' },
          }),
        ],
        [
          4,
          stat({
            title: 'Anomaly score',
            description: 'Score of the latest closed window. Compare with the threshold next to it.',
            unit: 'none',
            targets: [
              lastOfMachine('anomaly', 'score', 'score'),
            ],
            fieldConfig: { defaults: { decimals: 2 } },
            options: { colorMode: 'none' },
          }),
        ],
        [
          4,
          stat({
            title: 'Threshold',
            description: 'Calibrated per-machine threshold. Empty while the baseline is being learned.',
            unit: 'none',
            targets: [
              lastOfMachine('anomaly', 'threshold', 'threshold'),
            ],
            fieldConfig: { defaults: { decimals: 2 } },
            options: { colorMode: 'none', graphMode: 'none' },
          }),
        ],
        [
          4,
          gauge({
            title: 'Baseline collected',
            description: 'Share of the baseline the model has collected. Scoring starts at 100 %.',
            unit: 'percentunit',
            max: 1,
            steps: [
              { color: 'blue', value: null },
              { color: 'green', value: 1 },
            ],
            targets: [
              lastOfMachine('machine_status', 'baseline_progress', 'baseline'),
            ],
          }),
        ],
        [
          3,
          stat({
            title: 'Last reading',
            description: 'Seconds since the gateway last received a reading from this machine.',
            unit: 's',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 60 },
              { color: 'red', value: 300 },
            ],
            targets: [
              lastOfMachine('machine_status', 'last_seen_age_s', 'last reading'),
            ],
            options: { graphMode: 'none' },
          }),
        ],
        [
          4,
          stat({
            title: 'Windows above threshold',
            description: 'Number of scored windows in the selected range whose score was above the threshold.',
            unit: 'none',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 1 },
            ],
            targets: [
              influx(`SELECT sum("above") AS "above" FROM "anomaly" WHERE ${M} AND $timeFilter`, { columns: { above: 'number' } }, {
                alias: 'windows above',
              }),
            ],
            options: { graphMode: 'none' },
          }),
        ],
      ],
    ],
    [
      9,
      [
        [
          24,
          timeseries({
            title: 'Anomaly score and threshold',
            description:
              'Highest window score per interval and the calibrated threshold (dashed red). Alert annotations (red marks) show when alerts opened, changed and resolved.',
            unit: 'none',
            targets: [
              influx(
                `SELECT max("score") AS "score", max("threshold") AS "threshold" FROM "anomaly" WHERE ${M} AND $timeFilter GROUP BY time($__interval) fill(none)`,
                { columns: { score: 'number', threshold: 'number' }, minRows: 2 },
                { alias: '$col' },
              ),
            ],
            fieldConfig: {
              defaults: { decimals: 2 },
              overrides: [
                override('threshold', {
                  color: { mode: 'fixed', fixedColor: 'red' },
                  'custom.lineStyle': { fill: 'dash', dash: [10, 10] },
                  'custom.fillOpacity': 0,
                }),
              ],
            },
          }),
        ],
      ],
    ],
    [
      10,
      [
        [
          24,
          timeseries({
            title: 'Metrics',
            description:
              'Every metric this machine publishes, averaged per interval. Use the legend to show one metric at a time (click) or compare a few (ctrl/cmd-click).',
            unit: 'short',
            targets: [
              influx(
                `SELECT mean(*) FROM "telemetry" WHERE ${M} AND $timeFilter GROUP BY time($__interval) fill(none)`,
                { columnPattern: { regex: '^mean_', type: 'number' }, minRows: 2 },
                { alias: '$col' },
              ),
            ],
            // mean(*) names columns mean_<metric>; show the metric name as published.
            transformations: [{ id: 'renameByRegex', options: { regex: '^mean_(.*)$', renamePattern: '$1' } }],
            fieldConfig: { defaults: { custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 0, showPoints: 'never', spanNulls: false } } },
          }),
        ],
      ],
    ],
    [
      6,
      [
        [
          24,
          table({
            title: 'Latest alert and its contributing metrics',
            description:
              'The most recent alert event of this machine in the last 30 days and the metrics that pushed its score up, in plain words (feature value against baseline).',
            targets: [
              influx(
                `SELECT "kind", "severity", "state", "event", "message", "score", "threshold", "contributors" FROM "alerts" WHERE ${M} AND ${ALERT_LOOKBACK} ORDER BY time DESC LIMIT 1`,
                { columns: { state: 'string', message: 'string', contributors: 'string' } },
                { format: 'table' },
              ),
            ],
            transformations: [
              {
                id: 'organize',
                options: {
                  indexByName: { Time: 0, kind: 1, severity: 2, state: 3, event: 4, message: 5, contributors: 6, score: 7, threshold: 8 },
                  renameByName: { contributors: 'Contributing metrics' },
                },
              },
            ],
            fieldConfig: {
              defaults: {},
              overrides: [
                override('severity', { mappings: SEVERITY_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('state', { mappings: ALERT_STATE_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('Contributing metrics', { 'custom.width': 480 }),
                override('score', { decimals: 2 }),
                override('threshold', { decimals: 2 }),
              ],
            },
          }),
        ],
      ],
    ],
    [
      6,
      [
        [
          24,
          table({
            title: 'Top contributors of the latest window',
            description:
              'What drives the current score: the contributors of the most recent scored window, even when no alert is open.',
            targets: [
              influx(
                `SELECT "score", "threshold", "top" FROM "anomaly" WHERE ${M} AND $timeFilter ORDER BY time DESC LIMIT 1`,
                { columns: { score: 'number', top: 'string' } },
                { format: 'table' },
              ),
            ],
            transformations: [
              { id: 'organize', options: { indexByName: { Time: 0, top: 1, score: 2, threshold: 3 }, renameByName: { Time: 'Window end', top: 'Top contributors' } } },
            ],
            fieldConfig: { defaults: {}, overrides: [override('score', { decimals: 2 }), override('threshold', { decimals: 2 })] },
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          24,
          table({
            title: 'Alert history',
            description: 'Every alert transition of this machine in the selected range, newest first.',
            targets: [
              influx(
                `SELECT "kind", "severity", "event", "state", "message", "score", "threshold", "id" FROM "alerts" WHERE ${M} AND $timeFilter ORDER BY time DESC LIMIT 200`,
                { columns: { event: 'string', state: 'string', message: 'string' } },
                { format: 'table' },
              ),
            ],
            transformations: [
              { id: 'organize', options: { indexByName: { Time: 0, kind: 1, severity: 2, event: 3, state: 4, message: 5, score: 6, threshold: 7, id: 8 } } },
            ],
            fieldConfig: {
              defaults: {},
              overrides: [
                override('severity', { mappings: SEVERITY_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('state', { mappings: ALERT_STATE_MAPPINGS, 'custom.cellOptions': { type: 'color-text' } }),
                override('score', { decimals: 2 }),
                override('threshold', { decimals: 2 }),
              ],
            },
          }),
        ],
      ],
    ],
  ]);
  const alertAnnotation: InfluxAnnotation = {
    name: 'Alerts',
    datasource: DATASOURCE,
    enable: true,
    iconColor: 'red',
    query: `SELECT "message", "event", "kind", "severity" FROM "alerts" WHERE ${M} AND $timeFilter`,
    textColumn: 'message',
    tagsColumn: 'event,kind,severity',
    expect: { columns: { message: 'string', event: 'string' } },
  };
  return {
    uid: UIDS.machine,
    title: 'SmartOps: Machine detail',
    description: 'One machine: every metric over time, anomaly score with threshold, alerts and what caused them.',
    tags: ['smartops'],
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    panels,
    templating: {
      list: [queryVariable('machine', 'Machine', `SHOW TAG VALUES FROM "telemetry" WITH KEY = "machine"`, { refresh: 2 })],
    },
    annotations: { list: [alertAnnotation] },
  };
}

// ---------------------------------------------------------------------------------------------

export function gatewayHealth(): Dashboard {
  const H = `"host" =~ /^$host$/`;
  const rate = (field: string, as: string, unit = '1s') => `non_negative_derivative(last("${field}"), ${unit}) AS "${as}"`;
  // The newest value of one gateway field, one series per host (the stat tiles).
  const lastByHost = (field: string) =>
    influx(`SELECT last("${field}") AS "${field}" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY "host"`, { columns: { [field]: 'number' }, tags: ['host'] }, { alias: '$tag_host' });
  const ts = (
    title: string,
    description: string,
    unit: string,
    query: string,
    columns: Record<string, 'number'>,
    opts: { alias?: string; minRows?: number; tags?: string[]; overrides?: Json[] } = {},
  ) =>
    timeseries({
      title,
      description,
      unit,
      interval: HEALTH_INTERVAL,
      targets: [influx(query, { columns, tags: opts.tags ?? ['host'], minRows: opts.minRows ?? 2 }, { alias: opts.alias ?? '$tag_host $col' })],
      fieldConfig: { overrides: opts.overrides ?? [] },
    });
  const panels = layout([
    [
      4,
      [
        [
          4,
          stat({
            title: 'Readings / s',
            description: 'Readings accepted per second (latest interval).',
            unit: 'suffix: readings/s',
            interval: HEALTH_INTERVAL,
            targets: [
              influx(
                `SELECT ${rate('readings_accepted', 'accepted')} FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
                { columns: { accepted: 'number' }, tags: ['host'] },
                { alias: '$tag_host' },
              ),
            ],
            fieldConfig: { defaults: { decimals: 1 } },
            options: { colorMode: 'none' },
          }),
        ],
        [
          4,
          stat({
            title: 'Outbox depth',
            description: 'Readings stored durably but not yet written to InfluxDB. Growing means the sink is down or too slow.',
            unit: 'short',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 10000 },
              { color: 'red', value: 100000 },
            ],
            targets: [
              lastByHost('outbox_depth'),
            ],
          }),
        ],
        [
          4,
          stat({
            title: 'Oldest unsent reading',
            description: 'Age of the oldest reading waiting in the outbox.',
            unit: 's',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 60 },
              { color: 'red', value: 600 },
            ],
            targets: [
              lastByHost('outbox_oldest_age_s'),
            ],
          }),
        ],
        [
          4,
          stat({
            title: 'Open alerts',
            description: 'Alerts open or acknowledged right now.',
            unit: 'none',
            steps: [
              { color: 'green', value: null },
              { color: 'red', value: 1 },
            ],
            targets: [
              lastByHost('open_alerts'),
            ],
            options: { graphMode: 'none' },
          }),
        ],
        [
          4,
          stat({
            title: 'MQTT clients',
            description: 'Clients connected to the embedded MQTT broker.',
            unit: 'none',
            targets: [
              lastByHost('clients_connected'),
            ],
            options: { colorMode: 'none' },
          }),
        ],
        [
          4,
          stat({
            title: 'Memory (RSS)',
            description: 'Resident memory of the gateway process.',
            unit: 'bytes',
            steps: [
              { color: 'green', value: null },
              { color: 'orange', value: 512 * 1024 * 1024 },
              { color: 'red', value: 1024 * 1024 * 1024 },
            ],
            targets: [
              lastByHost('rss_bytes'),
            ],
          }),
        ],
      ],
    ],
    [
      8,
      [
        [
          12,
          ts(
            'Messages and readings per second',
            'MQTT telemetry messages received, readings accepted and readings rejected per second; dropped = deleted before InfluxDB had them (outbox full with drop-oldest, quarantine overflow, QoS 0 with the outbox full), overwritten = same machine and timestamp as the previous reading with another value (storage keeps one). Both should stay at 0.',
            'suffix: /s',
            `SELECT ${rate('messages_received', 'messages')}, ${rate('readings_accepted', 'accepted')}, ${rate('readings_rejected', 'rejected')}, ${rate('readings_dropped', 'dropped')}, ${rate('readings_overwritten', 'overwritten')} FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { messages: 'number', accepted: 'number', rejected: 'number', dropped: 'number', overwritten: 'number' },
          ),
        ],
        [
          12,
          ts(
            'Rejected per second by reason',
            'Rejections per second per reason (invalid_json, invalid_schema, timestamp_in_future, outbox_full, ...). See the gateway log for the offending topic and field.',
            'suffix: /s',
            `SELECT ${rate('count', 'rejected')} FROM "gateway_rejects" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host", "reason" fill(none)`,
            { rejected: 'number' },
            { alias: '$tag_reason ($tag_host)', tags: ['host', 'reason'] },
          ),
        ],
      ],
    ],
    [
      8,
      [
        [
          8,
          ts(
            'Outbox depth',
            'Readings waiting in the durable outbox, and its size on disk (right axis).',
            'short',
            `SELECT last("outbox_depth") AS "depth", last("outbox_bytes") AS "bytes" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { depth: 'number', bytes: 'number' },
            {
              // Alias is "<host> bytes": match by regex so the override works for every gateway.
              overrides: [
                {
                  matcher: { id: 'byRegexp', options: '.* bytes$' },
                  properties: [
                    { id: 'unit', value: 'bytes' },
                    { id: 'custom.axisPlacement', value: 'right' },
                  ],
                },
              ],
            },
          ),
        ],
        [
          8,
          ts(
            'Outbox age',
            'Age of the oldest reading waiting in the outbox: how far behind InfluxDB is.',
            's',
            `SELECT max("outbox_oldest_age_s") AS "oldest_age" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { oldest_age: 'number' },
          ),
        ],
        [
          8,
          ts(
            'Connected MQTT clients',
            'Clients connected to the embedded broker.',
            'none',
            `SELECT last("clients_connected") AS "clients" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { clients: 'number' },
          ),
        ],
      ],
    ],
    [
      8,
      [
        [
          8,
          ts(
            'Write latency',
            'Duration of the latest batch write to InfluxDB (highest per interval).',
            'ms',
            `SELECT max("write_latency_ms") AS "write_latency" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { write_latency: 'number' },
          ),
        ],
        [
          8,
          ts(
            'Write errors per minute',
            'Failed batch writes to InfluxDB per minute. Failed batches stay in the outbox and are retried.',
            'none',
            `SELECT ${rate('write_errors', 'write_errors', '1m')} FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { write_errors: 'number' },
          ),
        ],
        [
          8,
          ts(
            'Inference latency',
            'Mean time to score one window with the ONNX model.',
            'ms',
            `SELECT mean("inference_latency_ms") AS "inference_latency" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { inference_latency: 'number' },
          ),
        ],
      ],
    ],
    [
      8,
      [
        [
          12,
          ts(
            'Memory',
            'Resident set size and V8 heap used by the gateway process.',
            'bytes',
            `SELECT last("rss_bytes") AS "rss", last("heap_used_bytes") AS "heap_used" FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { rss: 'number', heap_used: 'number' },
          ),
        ],
        [
          12,
          ts(
            'CPU',
            'CPU time used by the gateway per second of wall time (100 % = one full core; the mini PC has two).',
            'percentunit',
            `SELECT ${rate('cpu_seconds', 'cpu')} FROM "gateway" WHERE ${H} AND $timeFilter GROUP BY time($__interval), "host" fill(none)`,
            { cpu: 'number' },
          ),
        ],
      ],
    ],
  ]);
  return {
    uid: UIDS.gateway,
    title: 'SmartOps: Gateway health',
    description: 'The gateway itself: throughput, rejections, outbox, InfluxDB writes, inference, clients, memory and CPU.',
    tags: ['smartops'],
    time: { from: 'now-3h', to: 'now' },
    refresh: '30s',
    panels,
    templating: {
      list: [queryVariable('host', 'Gateway', `SHOW TAG VALUES FROM "gateway" WITH KEY = "host"`, { includeAll: true, multi: true, refresh: 2 })],
    },
    annotations: { list: [] },
  };
}

/** File name (in dashboards/json/) -> dashboard. */
export function allDashboards(): Record<string, Dashboard> {
  return {
    'shop-floor-overview.json': shopFloor(),
    'machine-detail.json': machineDetail(),
    'gateway-health.json': gatewayHealth(),
  };
}
