#!/usr/bin/env node
/**
 * Replay a recorded CSV file through an MQTT broker as one machine's readings.
 * Run: npm run replay -- --help
 */
import { Command, Option } from 'commander';
import { telemetryTopic, NAME_PATTERN } from '../../../gateway/src/contract/reading.js';
import { formatDuration } from '../duration.js';
import { SimError } from '../errors.js';
import { Publisher, type BrokerAuthOptions } from '../mqtt/publisher.js';
import { newCsvStats, planCsv, readCsvReadings, readCsvSample, TIMESTAMP_FORMATS, type CsvOptions, type CsvPlan, type CsvRow, type Delimiter, type TimestampFormat } from '../replay/csv.js';
import { collect, fail, parsePositive, parseQos, ProgressLine } from './common.js';

interface ReplayOpts extends BrokerAuthOptions {
  file: string;
  machine: string;
  broker: string;
  speed: string;
  asFastAsAcked?: boolean;
  delimiter?: string;
  tsColumn?: string;
  tsFormat?: string;
  tz: string;
  exclude: string[];
  columns: string[];
  shiftToNow?: boolean;
  batch: string;
  qos: string;
  maxInflight: string;
  dryRun?: boolean;
  progress: boolean;
}

const MAX_AGE_MS = 30 * 86_400_000;

function splitList(values: string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
}

function parseDelimiter(raw: string): Delimiter {
  if (raw === ',' || raw === ';') return raw;
  if (raw === '\t' || raw === '\\t' || raw === 'tab') return '\t';
  throw new SimError('REPLAY_BAD_OPTION', `--delimiter "${raw}": use , ; or tab`);
}


export async function runReplay(o: ReplayOpts): Promise<void> {
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  if (!NAME_PATTERN.test(o.machine)) throw new SimError('SIM_BAD_MACHINE_ID', `--machine "${o.machine}" must match [A-Za-z0-9_.-]{1,64}`);
  const asFast = o.asFastAsAcked === true;
  const speed = asFast ? Number.POSITIVE_INFINITY : parsePositive('speed', o.speed);
  const qos = asFast ? 1 : parseQos(o.qos);
  const batch = parsePositive('batch', o.batch, true);
  const csvOpts: CsvOptions = { tz: o.tz, exclude: splitList(o.exclude) };
  if (o.columns.length) csvOpts.columns = splitList(o.columns);
  if (o.delimiter !== undefined) csvOpts.delimiter = parseDelimiter(o.delimiter);
  if (o.tsColumn !== undefined) csvOpts.timestampColumn = o.tsColumn;
  if (o.tsFormat !== undefined) {
    if (!(TIMESTAMP_FORMATS as readonly string[]).includes(o.tsFormat)) {
      throw new SimError('REPLAY_BAD_OPTION', `--ts-format ${o.tsFormat}: use one of ${TIMESTAMP_FORMATS.join(', ')}`);
    }
    csvOpts.timestampFormat = o.tsFormat as TimestampFormat;
  }
  const plan: CsvPlan = planCsv(await readCsvSample(o.file, '--file '), csvOpts);
  log(
    `replay ${o.file} as ${o.machine}: delimiter ${plan.delimiter === '\t' ? 'tab' : `"${plan.delimiter}"`}${plan.decimalComma ? ' (decimal comma)' : ''}, ` +
      `timestamp column "${plan.timestampColumn}" (${plan.timestampFormat}${plan.timestampFormat === 'datetime' ? `, ${plan.tz === 'local' ? 'local time' : `UTC${plan.tz >= 0 ? '+' : '-'}${Math.abs(plan.tz)}min`}` : ''})`,
  );
  log('metrics (CSV column -> metric name):');
  for (const m of plan.metrics) log(`  ${JSON.stringify(m.column)} -> ${m.name}`);
  for (const s of plan.skipped) log(`  ${JSON.stringify(s.column)} skipped (${s.reason})`);

  // first pass: time span (for --shift-to-now and the age warning) and row count
  let first: number | undefined;
  let last: number | undefined;
  let total = 0;
  for await (const row of readCsvReadings(o.file, plan)) {
    first ??= row.ts;
    last = last === undefined ? row.ts : Math.max(last, row.ts);
    total++;
  }
  if (first === undefined || last === undefined) throw new SimError('REPLAY_NO_METRICS', `${o.file}: no row could be parsed`);
  const shift = o.shiftToNow ? Date.now() - last : 0;
  log(`${total} rows from ${new Date(first).toISOString()} to ${new Date(last).toISOString()} (${formatDuration(last - first)})${shift ? `, shifted by ${formatDuration(shift)} so the last row is now` : ''}`);
  if (!o.shiftToNow && first < Date.now() - MAX_AGE_MS) {
    log('warning: the file\'s timestamps are older than 30 days; the gateway rejects them (timestamp_too_old) unless its ingest.maxAgeMs allows it. Use --shift-to-now to move them to the present.');
  }

  const stats = newCsvStats();
  if (o.dryRun) {
    for await (const _ of readCsvReadings(o.file, plan, stats)) void _;
    report(stats, 0, 0, log);
    return;
  }

  const brokerOpts: Parameters<typeof Publisher.connect>[0] = { url: o.broker, maxInflight: parsePositive('max-inflight', o.maxInflight, true) };
  for (const k of ['username', 'password', 'ca', 'cert', 'key', 'clientId'] as const) if (o[k] !== undefined) brokerOpts[k] = o[k];
  if (o.insecure) brokerOpts.insecure = true;
  const pub = await Publisher.connect(brokerOpts, log);
  const topic = telemetryTopic(o.machine);
  let stopping = false;
  process.once('SIGINT', () => (stopping = true));
  process.once('SIGTERM', () => (stopping = true));

  const progress = new ProgressLine(o.progress);
  const wallStart = Date.now();
  let buf: CsvRow[] = [];
  let fileTs = first;
  const flush = async (): Promise<void> => {
    if (buf.length === 0) return;
    const rows = buf;
    buf = [];
    const payload =
      rows.length === 1 && batch === 1
        ? JSON.stringify({ ts: (rows[0] as CsvRow).ts + shift, metrics: (rows[0] as CsvRow).metrics })
        : JSON.stringify({ readings: rows.map((r) => ({ ts: r.ts + shift, metrics: r.metrics })) });
    await pub.publish(topic, payload, qos, rows.length);
  };
  const render = (): string => {
    const s = pub.stats;
    return `replay ${o.machine} | sent ${s.readings}/${total} readings (${s.messages} msgs) | file time ${new Date(fileTs).toISOString()} | inflight ${s.inflight}${s.connected ? '' : ' | DISCONNECTED'}${s.errors ? ` | errors ${s.errors}` : ''}`;
  };
  for await (const row of readCsvReadings(o.file, plan, stats)) {
    if (stopping) break;
    fileTs = row.ts;
    if (speed !== Number.POSITIVE_INFINITY) {
      // pace by the file's own clock; rows that go back in time are sent at once
      const due = wallStart + (row.ts - first) / speed;
      const wait = due - Date.now();
      if (wait > 0) {
        await flush();
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    buf.push(row);
    if (buf.length >= batch) await flush();
    progress.update(render);
  }
  await flush();
  await pub.drain();
  progress.update(render, true);
  progress.done();
  const s = pub.stats;
  report(stats, s.readings, s.messages, log);
  log(`published in ${formatDuration(Date.now() - wallStart)}; ${s.errors} publish errors, ${s.reconnects} reconnects`);
  await pub.end();
  if (s.errors > 0) process.exitCode = 1;
}

function report(stats: ReturnType<typeof newCsvStats>, sent: number, messages: number, log: (s: string) => void): void {
  const skipped = Object.entries(stats.skipped).filter(([, n]) => n > 0);
  log(
    `rows read ${stats.rows}, parsed ${stats.parsed}, readings sent ${sent} in ${messages} messages, ` +
      `rows skipped ${skipped.reduce((a, [, n]) => a + n, 0)}${skipped.length ? ` (${skipped.map(([k, n]) => `${k} ${n}`).join(', ')})` : ''}, ` +
      `non-numeric cells ${stats.badCells}`,
  );
  for (const e of stats.examples) log(`  line ${e.line}: ${e.reason}: ${e.detail}`);
}

export function replayCommand(): Command {
  return new Command('replay')
    .description('Publish a recorded CSV file through an MQTT broker as one machine\'s readings, with the file\'s own timestamps.')
    .requiredOption('--file <path>', 'CSV file with a header row')
    .requiredOption('--machine <id>', 'machine id to publish as (topic machines/<id>/telemetry)')
    .option('--broker <url>', 'broker URL (mqtt://, mqtts://, ws://, wss://)', 'mqtt://localhost:1883')
    .option('--speed <n>', 'file seconds per wall second (1 = as recorded, 1000 = a thousand times faster)', '1')
    .option('--as-fast-as-acked', 'ignore timing and publish at QoS 1 as fast as the broker acknowledges (back-fill)')
    .option('--delimiter <d>', 'field delimiter: , ; or tab (default: detected)')
    .option('--ts-column <name>', 'timestamp column (default: detected by name, then by content)')
    .addOption(new Option('--ts-format <fmt>', 'timestamp format (default: detected)').choices([...TIMESTAMP_FORMATS]))
    .option('--tz <zone>', 'zone of YYYY-MM-DD HH:mm:ss stamps: local, utc or +HH:MM', 'local')
    .option('--exclude <cols>', 'columns not to publish (comma-separated, repeatable), e.g. anomaly,changepoint', collect, [])
    .option('--columns <cols>', 'publish only these columns (comma-separated, repeatable)', collect, [])
    .option('--shift-to-now', 'move all timestamps so the last row is at the start of the replay (intervals kept)')
    .option('--batch <n>', 'readings per message', '1')
    .addOption(new Option('--qos <0|1>', 'MQTT QoS (--as-fast-as-acked forces 1)').default('1'))
    .option('--username <user>', 'MQTT username')
    .option('--password <pass>', 'MQTT password')
    .option('--ca <file>', 'CA certificate (PEM)')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client private key (PEM)')
    .option('--insecure', 'do not verify the broker certificate (testing only)')
    .option('--client-id <id>', 'MQTT client id')
    .option('--max-inflight <n>', 'publishes outstanding at most', '100')
    .option('--dry-run', 'parse and report only; publish nothing')
    .option('--no-progress', 'no progress line on stderr')
    .action(async (opts: ReplayOpts) => {
      try {
        await runReplay(opts);
      } catch (e) {
        fail(e);
      }
    });
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/replay.ts')) {
  await replayCommand().parseAsync(process.argv);
}
