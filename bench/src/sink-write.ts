/**
 * The InfluxDB sinks' write path alone: CPU and garbage collection per reading for `Sink.write` of
 * 10,000-reading batches (the forwarder's batch size) against a local HTTP server in a child process
 * that reads each body and answers 204 (so its CPU is not counted here). No InfluxDB 2 can run on
 * this machine; this measures what the gateway spends, which is the part the sink's code decides.
 *
 *   npx tsx bench/src/sink-write.ts [--batches 60] [--batch 10000] [--rounds 3] [--sinks v1,v2]
 *
 * Prints, per sink and round: CPU microseconds per reading (this process, all threads), scavenges and
 * mark-compacts per 100,000 readings, and the main thread's GC pause per 100,000 readings.
 */
import { fork } from 'node:child_process';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Reading } from '../../gateway/src/contract/reading.js';
import { InfluxV1Sink } from '../../gateway/src/sinks/influx-v1.js';
import { InfluxV2Sink } from '../../gateway/src/sinks/influx-v2.js';
import type { Sink } from '../../gateway/src/sinks/sink.js';

const { values: argv } = parseArgs({
  options: {
    batches: { type: 'string', default: '60' },
    batch: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    sinks: { type: 'string', default: 'v1,v2' },
    server: { type: 'boolean', default: false },
  },
});
const BATCHES = Number(argv.batches);
const BATCH = Number(argv.batch);
const ROUNDS = Number(argv.rounds);

if (argv.server) {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(204);
      res.end();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.((server.address() as { port: number }).port));
} else {
  const child = fork(new URL(import.meta.url).pathname, ['--server'], { execArgv: ['--import', 'tsx'] });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
  const url = `http://127.0.0.1:${port}`;

  // 1000 machines, 4 metrics with two or three decimals (what the load generator publishes), ms timestamps.
  const readings: Reading[] = [];
  for (let i = 0; i < BATCH * 4; i++) {
    const m = i % 1000;
    readings.push({
      machine: `machine-${String(m).padStart(4, '0')}`,
      ts: 1_765_000_000_000 + i,
      metrics: {
        temp_c: Math.round((40 + (m % 17) + Math.random()) * 100) / 100,
        current_a: Math.round((8 + (m % 5) + Math.random() * 0.3) * 100) / 100,
        vibration_mm_s: Math.round((1.5 + Math.random() * 0.1) * 1000) / 1000,
        pressure_bar: Math.round((6 + Math.random() * 0.05) * 100) / 100,
      },
    });
  }
  const batches = [0, 1, 2, 3].map((k) => readings.slice(k * BATCH, (k + 1) * BATCH));

  const gc = { minor: 0, major: 0, pauseMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
      gc.pauseMs += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });

  const make = (name: string): Sink =>
    name === 'v1'
      ? new InfluxV1Sink({ url, database: 'bench', createDatabase: false, timeoutMs: 10_000, tagsFor: () => undefined })
      : new InfluxV2Sink({ url, org: 'o', bucket: 'b', token: 't', timeoutMs: 10_000, tagsFor: () => undefined });

  const run = async (sink: Sink, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const out = await sink.write(batches[i % batches.length] as Reading[]);
      if (!out.ok) throw new Error(`write failed: ${JSON.stringify(out)}`);
    }
  };

  for (let round = 1; round <= ROUNDS; round++) {
    for (const name of (argv.sinks ?? '').split(',')) {
      const sink = make(name);
      await run(sink, 10); // warm-up: caches filled, code optimised
      gc.minor = gc.major = gc.pauseMs = 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await run(sink, BATCHES);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const per100k = 100_000 / (BATCHES * BATCH);
      console.log(
        `round ${round} ${name}: ${(((cpu.user + cpu.system) / (BATCHES * BATCH))).toFixed(2)} us CPU per reading ` +
          `(wall ${((wall * 1000) / (BATCHES * BATCH)).toFixed(2)} us), per 100,000 readings: ` +
          `${(gc.minor * per100k).toFixed(1)} scavenges, ${(gc.major * per100k).toFixed(2)} mark-compacts, GC pause ${(gc.pauseMs * per100k).toFixed(1)} ms`,
      );
    }
  }
  child.kill();
}
