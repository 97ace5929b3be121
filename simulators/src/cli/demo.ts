#!/usr/bin/env node
/**
 * `npm run demo`: the gateway in-process on loopback (embedded store, anonymous MQTT) plus a dozen
 * simulated machines. The simulation starts a few hours in the past and back-fills as fast as the
 * gateway takes it (so every machine has learnt its baseline), then runs live in real time; cnc-03
 * develops a bearing fault that becomes visible within the first minutes of wall time and trips
 * (fails) about 12 minutes in.
 */
import { Command } from 'commander';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deepMerge, validateConfig, type PlainObject } from '../../../gateway/src/config/load.js';
import { startGateway } from '../../../gateway/src/main.js';
import { formatDuration } from '../duration.js';
import { runSimulate } from './simulate.js';
import { fail } from './common.js';

interface DemoOpts {
  httpPort: string;
  mqttPort: string;
  dataDir: string;
  machines: string;
  seed: string;
  baseline: string;
  keepData?: boolean;
}

/**
 * Each demo starts from a clean slate (baselines, alerts, readings), so a second run shows the same
 * story. Only a directory the demo made itself (marker file) is ever wiped.
 */
function prepareDataDir(dir: string, keep: boolean): void {
  const marker = join(dir, '.smartops-demo');
  if (existsSync(dir) && !keep) {
    if (existsSync(marker)) rmSync(dir, { recursive: true, force: true });
    else if (readdirSync(dir).length > 0) throw new Error(`--data-dir ${dir} is not empty and was not made by the demo; choose another directory or pass --keep-data`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(marker, 'made by `npm run demo`; wiped at the next demo start unless --keep-data\n');
}

const H = 3_600_000;

async function runDemo(o: DemoOpts): Promise<void> {
  const baselineMs = Number(o.baseline) * H;
  prepareDataDir(o.dataDir, o.keepData === true);
  const config = validateConfig(
    deepMerge(
      {},
      {
        dataDir: o.dataDir,
        mqtt: { host: '127.0.0.1', port: Number(o.mqttPort), allowAnonymous: true },
        http: { host: '127.0.0.1', port: Number(o.httpPort) },
        detection: { baseline: { durationMs: baselineMs } },
        log: { level: 'warn' },
      } as PlainObject,
    ),
  );
  const gw = await startGateway(config);
  const api = `http://127.0.0.1:${gw.httpPort}`;
  const now = Date.now();
  // history: baseline + 30 min, back-filled at full speed; the fault starts 3 min before "now" and
  // fails 12 minutes later (wall time)
  const startTs = now - baselineMs - 30 * 60_000;
  const onsetAfterStartMs = now - 3 * 60_000 - startTs;
  process.stderr.write(
    [
      '',
      `smartops-gateway demo: gateway on ${api} (MQTT mqtt://127.0.0.1:${gw.mqttPort}), data in ${config.dataDir}`,
      `back-filling ${formatDuration(now - startTs)} of history for ${o.machines} machines, then live. Watch:`,
      `  ${api}/api/v1/machines                      machines, readings counts, metric names`,
      `  ${api}/api/v1/machines/cnc-03/anomaly       cnc-03's anomaly score rising above its threshold`,
      `  ${api}/api/v1/alerts                        the alert for cnc-03 (bearing wear) opening`,
      `  ${api}/api/v1/machines/cnc-03/readings?limit=5   latest raw readings (vibration_rms_mm_s, vibration_kurtosis)`,
      `  ${api}/docs                                 the API`,
      'Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  try {
    await runSimulate({
      broker: `mqtt://127.0.0.1:${gw.mqttPort}`,
      machines: o.machines,
      speed: 'max',
      seed: o.seed,
      start: String(startTs),
      fault: [`cnc-03:bearing-wear@${Math.round(onsetAfterStartMs / 1000)}s+15m`],
      qos: '1',
      batch: '10',
      schedule: 'continuous', // machines busy whatever the time of day the demo runs
      maxInflight: '200',
      progress: true,
    });
  } finally {
    await gw.stop();
  }
}

new Command('demo')
  .description('Gateway + a dozen simulated machines, one developing a bearing fault within minutes.')
  .option('--http-port <n>', 'HTTP port', '8080')
  .option('--mqtt-port <n>', 'MQTT port', '1883')
  .option('--data-dir <dir>', 'gateway data directory', './data/demo')
  .option('--machines <n>', 'simulated machines', '12')
  .option('--seed <n>', 'simulation seed', '7')
  .option('--baseline <hours>', 'hours of history each machine learns its normal behaviour from', '4')
  .option('--keep-data', 'keep the previous demo run\'s data (default: start clean)')
  .action(async (opts: DemoOpts) => {
    try {
      await runDemo(opts);
    } catch (e) {
      fail(e);
    }
  })
  .parseAsync(process.argv)
  .catch(fail);
