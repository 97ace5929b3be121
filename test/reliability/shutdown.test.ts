/**
 * Graceful stop (SIGTERM) of the gateway as a child process: it flushes the outbox to the sink
 * (real influxd) and exits within shutdownTimeoutMs; with the sink down, or hanging, it exits in
 * time anyway and the unsent readings are in the outbox on the next start.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithInfluxd, startInfluxd, type Influxd } from '../helpers/influxd.js';
import { compare, influxPoints, outboxState, RecordingPublisher, spawnGateway, removeTempDirs, tempDir, waitForDrain, type ChildGateway } from './helpers.js';

/** Exit overhead allowed on top of shutdownTimeoutMs (process teardown on a busy 2-core machine). */
const SLACK_MS = 4000;

async function publish(gw: ChildGateway, machine: string, messages: number): Promise<RecordingPublisher> {
  const p = await RecordingPublisher.connect(gw.mqttUrl, machine, Date.now() - 3600_000, { perMessage: 50, window: 10, maxMessages: messages });
  p.start();
  await p.finished();
  await p.settle(20000);
  await p.end();
  return p;
}

async function sigterm(gw: ChildGateway): Promise<{ code: number | null; ms: number }> {
  const t = Date.now();
  gw.kill('SIGTERM');
  const e = await gw.exited;
  return { code: e.code, ms: Date.now() - t };
}

describeWithInfluxd('graceful stop', () => {
  let influx: Influxd;
  const children: ChildGateway[] = [];
  let blackHole: Server | undefined;
  const held: Socket[] = [];

  beforeAll(async () => {
    influx = await startInfluxd();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const s of held) s.destroy();
    blackHole?.close();
    await Promise.all(children.map((c) => c.exited));
    removeTempDirs();
    await influx?.stop();
  });

  it('SIGTERM flushes what is waiting to InfluxDB, then exits 0 within shutdownTimeoutMs', async () => {
    const dataDir = tempDir('flush');
    // A flush interval far beyond the test: only the stop can flush these readings.
    const sets = ['sink.flushIntervalMs=600000', 'sink.batchSize=100000', 'shutdownTimeoutMs=15000'];
    const gw = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'flush', sets });
    children.push(gw);
    const p = await publish(gw, 'press-01', 40);
    expect(p.acked.size).toBe(2000);
    expect((await outboxState(gw.httpUrl)).depth).toBe(2000);
    const stop = await sigterm(gw);
    expect(stop.code, gw.logs()).toBe(0);
    expect(stop.ms).toBeLessThan(15000 + SLACK_MS);
    expect(gw.logLines().find((l) => l.msg === 'stopped')).toMatchObject({ leftInOutbox: 0 });
    const points = await influxPoints(influx, 'flush', ['press-01']);
    expect(compare(p.acked.values(), points)).toEqual({ missing: [], wrong: [], duplicates: [] });
    expect(points).toHaveLength(2000);
  });

  it('with InfluxDB down it exits in time and the readings wait in the outbox for the next start', async () => {
    const dataDir = tempDir('down');
    const sets = ['sink.flushIntervalMs=50', 'sink.retryInitialMs=100', 'sink.retryMaxMs=500', 'shutdownTimeoutMs=5000'];
    await influx.createDatabase('down');
    await influx.pause();
    const gw = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'down', sets });
    children.push(gw);
    const p = await publish(gw, 'lathe-02', 30);
    expect(p.acked.size).toBe(1500);
    const stop = await sigterm(gw);
    expect(stop.code, gw.logs()).toBe(0);
    expect(stop.ms).toBeLessThan(5000 + SLACK_MS);
    expect(gw.logLines().find((l) => l.msg === 'stopped')).toMatchObject({ leftInOutbox: 1500 });

    const gw2 = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'down', sets });
    children.push(gw2);
    expect((await outboxState(gw2.httpUrl)).depth).toBe(1500);
    await influx.resume();
    await waitForDrain(gw2.httpUrl, 30000);
    const points = await influxPoints(influx, 'down', ['lathe-02']);
    expect(compare(p.acked.values(), points)).toEqual({ missing: [], wrong: [], duplicates: [] });
    expect(points).toHaveLength(1500);
    expect((await sigterm(gw2)).code).toBe(0);
  });

  it('with a sink that accepts connections but never answers, the write in flight is abandoned at the deadline', async () => {
    // Stand-in: a TCP server that accepts and stays silent (a hung InfluxDB); influxd cannot be made to hang on cue.
    blackHole = createServer((s) => {
      held.push(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => blackHole?.listen(0, '127.0.0.1', r));
    const hole = `http://127.0.0.1:${(blackHole.address() as { port: number }).port}`;
    const dataDir = tempDir('hang');
    const gw = await spawnGateway({ dataDir, influxUrl: hole, database: 'hang', sets: ['sink.flushIntervalMs=50', 'sink.timeoutMs=120000', 'shutdownTimeoutMs=2000'] });
    children.push(gw);
    const p = await publish(gw, 'mill-03', 20);
    expect(p.acked.size).toBe(1000);
    const stop = await sigterm(gw);
    expect(stop.code, gw.logs()).toBe(0);
    expect(stop.ms).toBeLessThan(2000 + SLACK_MS);

    // Next start, pointed at the real InfluxDB: the readings are still there and go out.
    const gw2 = await spawnGateway({ dataDir, influxUrl: influx.url, database: 'hang', sets: ['sink.flushIntervalMs=50'] });
    children.push(gw2);
    await waitForDrain(gw2.httpUrl, 30000);
    const points = await influxPoints(influx, 'hang', ['mill-03']);
    expect(compare(p.acked.values(), points)).toEqual({ missing: [], wrong: [], duplicates: [] });
    expect((await sigterm(gw2)).code).toBe(0);
  });
});
