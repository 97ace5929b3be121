/**
 * The one place that wires the modules together. Data flows one way:
 *   broker (aedes) -> ingest (validation) -> outbox (durable) -> forwarder -> sink (InfluxDB | embedded)
 *                                          \-> machine registry, detection -> alerts -> MQTT / InfluxDB / webhooks / HTTP
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { MqttAcl, loadUsersFile } from './auth/mqtt-acl.js';
import { Broker } from './broker/broker.js';
import type { Config } from './config/schema.js';
import type { Reading } from './contract/reading.js';
import type { GatewayError } from './errors.js';
import { createHttpServer } from './http/server.js';
import { coreRoutes, type ReadinessCheck } from './http/routes/core.js';
import { detectionRoutes } from './http/routes/detection.js';
import { alertRoutes, createAlerts } from './alerts/index.js';
import { createDetection } from './detect/index.js';
import type { WindowScore } from './contract/detection.js';
import { HealthWriter, type MachineStatusName } from './obs/health.js';
import { AuxWriter } from './sinks/aux-writer.js';
import { formatPoint } from './sinks/lineprotocol.js';
import { Ingest } from './ingest/ingest.js';
import { IngestGate } from './ingest/gate.js';
import { RejectLog } from './ingest/rejects.js';
import { MachineRegistry } from './machines/registry.js';
import { createLogger, RateLimitedLog } from './obs/logger.js';
import { createCoreMetrics, createRegistry } from './obs/metrics.js';
import { Outbox } from './outbox/outbox.js';
import { Forwarder } from './sinks/forwarder.js';
import { createSink } from './sinks/index.js';

export interface Gateway {
  mqttPort: number;
  httpPort: number;
  wsPort?: number | undefined;
  tlsPort?: number | undefined;
  sinkType: string;
  logger: Logger;
  stop(): Promise<void>;
  /**
   * Rejects (SMARTOPS_OUTBOX_WORKER) once the gateway has failed while running and stopped itself:
   * the outbox writer thread died, so nothing more can be stored. Never resolves. The CLI exits 1
   * on it (for systemd or Docker to restart the gateway); a library caller decides for itself.
   */
  failed: Promise<never>;
}

export interface StartOptions {
  logger?: Logger;
}

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    if (pkg.version) return pkg.version;
  } catch {
    // running from dist/: one level further up
  }
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function startGateway(config: Config, opts: StartOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? createLogger(config.log.level, config.log.pretty);
  const version = packageVersion();
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const startedAt = Date.now();
  const registry = createRegistry();
  const metrics = createCoreMetrics(registry);
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        logger.error({ err: e }, 'error while stopping');
      }
    }
  };

  try {
    // --- durable outbox
    // Its writer thread failing is fatal: nothing more can be stored (and nothing is acknowledged),
    // so the gateway stops and reports it (`failed`; before start has returned, start rejects).
    const outboxWorkerFailures = new Counter({
      name: 'smartops_outbox_worker_failures_total',
      help: 'Failures of the outbox writer thread (each one stops the gateway: readings can no longer be stored)',
      registers: [registry],
    });
    let outboxFatalEarly: GatewayError | undefined;
    let onOutboxFatal = (err: GatewayError): void => {
      outboxFatalEarly = err;
    };
    const dropLog = new RateLimitedLog(logger.child({ component: 'outbox' }), 10_000);
    const outbox = new Outbox({
      dir: dataDir,
      fsync: config.outbox.fsync,
      commitIntervalMs: config.outbox.commitIntervalMs,
      maxBytes: config.outbox.maxBytes,
      fullPolicy: config.outbox.fullPolicy,
      fullWaitMs: config.outbox.fullWaitMs,
      quarantineKeep: config.outbox.quarantineKeep,
      // The unsent tail in memory: a few forwarder batches (bounded by bytes as well, tail.ts).
      memoryRows: Math.max(20_000, 4 * config.sink.batchSize),
      onDrop: (n, reason) => {
        metrics.readingsDropped.inc({ reason }, n);
        dropLog.warn(
          reason,
          { dropped: n, reason, policy: config.outbox.fullPolicy },
          reason === 'quarantine_overflow' ? 'quarantine full: oldest quarantined readings deleted' : 'outbox budget full: oldest readings deleted',
        );
      },
      onCommit: (s) => metrics.outboxCommitLatency.observe(s),
      onFatal: (err) => {
        outboxWorkerFailures.inc();
        logger.fatal({ code: err.code, err }, 'outbox writer thread failed: readings can no longer be stored; stopping the gateway');
        onOutboxFatal(err);
      },
    });
    cleanups.push(() => outbox.close());
    metrics.outboxBudgetBytes.set(config.outbox.maxBytes);

    // --- machine registry
    const machines = new MachineRegistry(dataDir, config.machines);
    cleanups.push(() => machines.close());
    const tagsFor = (m: string): Record<string, string | undefined> | undefined => {
      const t = machines.tagsFor(m);
      return t ? { site: t.site, line: t.line, kind: t.kind } : undefined;
    };

    // --- sink and where readings are read back from
    const { sink, readings } = createSink(config, dataDir, tagsFor, registry);
    await sink.init();
    cleanups.push(() => sink.close());

    // --- derived points (anomaly, alerts, health) to the sink, bounded
    const aux = new AuxWriter(sink, 100_000, metrics.readingsDropped, logger.child({ component: 'aux-writer' }));
    aux.start();
    cleanups.push(() => aux.stop());

    // --- detection -> alerts
    const detection = await createDetection(config.detection, { dataDir, logger: logger.child({ component: 'detect' }), registry });
    cleanups.push(() => detection.close());
    // The broker exists only later; alerts published before it listens are queued by the alerts notifier.
    let publishMqtt: ((topic: string, payload: string) => Promise<void>) | undefined;
    const alerts = await createAlerts(config.alerts, {
      dataDir,
      logger,
      registry,
      publishMqtt: (topic, payload) => (publishMqtt ? publishMqtt(topic, payload) : Promise.reject(new Error('broker not started'))),
      writeInflux: (lines) => aux.push(lines),
      kindOf: (m) => machines.kindOf(m),
    });
    cleanups.push(() => alerts.close());
    detection.on('condition', (e) => alerts.onCondition(e));
    detection.on('score', (w: WindowScore) => {
      aux.push([
        formatPoint(
          'anomaly',
          { machine: w.machine },
          {
            score: w.score,
            threshold: w.threshold ?? undefined,
            above: { int: w.above ? 1 : 0 },
            learning: { int: w.phase === 'learning' ? 1 : 0 },
            top: w.contributors.length ? w.contributors.map((c) => c.text).join('; ') : undefined,
          },
          w.windowEnd,
        ),
      ]);
    });
    const ticker = setInterval(() => {
      detection.tick();
      alerts.tick();
    }, 1000);
    ticker.unref();
    cleanups.push(() => clearInterval(ticker));

    // --- ingest
    const rejects = new RejectLog(config.ingest.rejectsKept);
    const overwriteLog = new RateLimitedLog(logger.child({ component: 'ingest' }), 60_000);
    const onAccepted = (rs: Reading[]): void => {
      const overwritten = machines.record(rs);
      if (overwritten > 0) {
        metrics.readingsOverwritten.inc(overwritten);
        const machine = (rs[0] as Reading).machine;
        overwriteLog.warn(
          `overwrite:${machine}`,
          { machine, readings: overwritten },
          'machine sends readings with the same timestamp and other values: storage keeps one point per machine and millisecond, so the earlier values are overwritten (send a finer ts, or one reading per time)',
        );
      }
      detection.push(rs);
      alerts.onReadings(rs);
    };
    const ingest = new Ingest({
      limits: config.ingest,
      outbox,
      rejects,
      metrics,
      logger: logger.child({ component: 'ingest' }),
      rejectLogIntervalMs: config.ingest.rejectLogIntervalMs,
      onAccepted,
      maxMachines: config.ingest.maxMachines,
      knownMachines: machines.ids(),
    });

    // --- back-pressure: the broker holds telemetry while one group commit's worth waits
    const gate = new IngestGate({ maxPendingReadings: config.ingest.maxPendingReadings }, outbox, registry, logger.child({ component: 'ingest' }));
    outbox.on('settled', () => gate.poke());

    // --- broker
    const users = [...config.mqtt.users, ...(config.mqtt.usersFile ? loadUsersFile(config.mqtt.usersFile) : [])];
    const acl = new MqttAcl(users, config.mqtt.allowAnonymous);
    if (!config.mqtt.allowAnonymous && users.length === 0) {
      logger.warn('no MQTT users configured and anonymous access is off: no device can connect (add one with `smartops-gateway user add`, or --allow-anonymous for a trial)');
    }
    const broker = await Broker.create(
      {
        host: config.mqtt.host,
        port: config.mqtt.port,
        ws: config.mqtt.ws,
        tls: config.mqtt.tls,
        maxConnections: config.mqtt.maxConnections,
        connectTimeoutMs: config.mqtt.connectTimeoutMs,
        drainTimeoutMs: config.mqtt.drainTimeoutMs,
        maxInflightPerClient: config.mqtt.maxInflightPerClient,
        maxQueuedBytesPerClient: config.mqtt.maxQueuedBytesPerClient,
        maxOfflineMessagesPerClient: config.mqtt.maxOfflineMessagesPerClient,
      },
      { ingest, acl, metrics, gate, logger: logger.child({ component: 'mqtt' }) },
    );
    cleanups.push(() => broker.close());
    const ports = await broker.listen();
    publishMqtt = (topic, payload) => broker.publish(topic, payload, 1);

    // --- forwarder
    const forwarder = new Forwarder(outbox, sink, config.sink, metrics, logger.child({ component: 'forwarder', sink: sink.name }));
    forwarder.start();
    cleanups.push(() => forwarder.stop(0));

    // --- HTTP
    const readiness = async (): Promise<Record<string, ReadinessCheck>> => {
      const s = outbox.stats();
      const share = s.bytes / s.maxBytes;
      const sinkOk = await sink.ping();
      return {
        broker: { ok: ports.mqtt > 0, detail: `listening on ${config.mqtt.host}:${ports.mqtt}` },
        sink: { ok: sinkOk, detail: `${sink.name} ${sinkOk ? 'reachable' : 'unreachable'}${forwarder.status.lastError ? `; last error: ${forwarder.status.lastError}` : ''}` },
        outbox: {
          ok: share <= config.outbox.readyThreshold,
          detail: `${s.depth} readings waiting, ${(share * 100).toFixed(1)}% of the ${s.maxBytes}-byte budget (limit ${(config.outbox.readyThreshold * 100).toFixed(0)}%)`,
        },
      };
    };
    // The outbox keeps running totals; each scrape adds to a counter what its total grew by since the last.
    const lastTotals = new Map<string, number>();
    const addGrowth = (key: string, total: number, inc: (n: number) => void): void => {
      inc(total - (lastTotals.get(key) ?? 0));
      lastTotals.set(key, total);
    };
    const beforeScrape = (): void => {
      const s = outbox.stats();
      metrics.outboxDepth.set(s.depth);
      metrics.outboxBytes.set(s.bytes);
      metrics.outboxOldestAgeSeconds.set(s.oldestArrival === null ? 0 : (Date.now() - s.oldestArrival) / 1000);
      const t = outbox.memoryStats();
      metrics.outboxMemoryRows.set(t.rows);
      addGrowth('reads.memory', t.hits, (n) => metrics.outboxReads.inc({ source: 'memory' }, n));
      addGrowth('reads.sqlite', t.misses, (n) => metrics.outboxReads.inc({ source: 'sqlite' }, n));
      const a = outbox.ackStats();
      addGrowth('acks.posted', a.async, (n) => metrics.outboxAcks.inc({ mode: 'posted' }, n));
      addGrowth('acks.waited', a.sync, (n) => metrics.outboxAcks.inc({ mode: 'waited' }, n));
      addGrowth('acks.retried', a.retried, (n) => metrics.outboxAckRetries.inc(n));
    };
    const http = await createHttpServer({
      config: config.http,
      logger,
      metrics,
      version,
      routes: [
        coreRoutes({ registry, machines, readings, readingsFrom: sink.name, rejects, outbox, readiness, beforeScrape, startedAt, version }),
        detectionRoutes({ detection, knownMachine: (id) => machines.get(id) !== undefined }),
        alertRoutes({ engine: alerts }),
      ],
    });
    await http.listen({ host: config.http.host, port: config.http.port });
    cleanups.push(() => http.close());
    const httpPort = (http.server.address() as { port: number }).port;

    // --- self-monitoring into the sink (Grafana's "Gateway health" and machine tiles)
    const host = hostname();
    const counterSum = async (c: { get(): Promise<{ values: { value: number; labels: Record<string, string | number | undefined> }[] }> }): Promise<number> =>
      (await c.get()).values.reduce((a, v) => a + v.value, 0);
    const health = new HealthWriter(
      config.health.intervalMs,
      async () => {
        const s = outbox.stats();
        const now = Date.now();
        const rejected = (await metrics.messagesRejected.get()).values;
        const openByMachine = alerts.machinesWithActive();
        const det = new Map(detection.machines().map((d) => [d.machine, d]));
        const mem = process.memoryUsage();
        const cpu = process.cpuUsage();
        const model = detection.modelInfo();
        return {
          host,
          readingsAccepted: await counterSum(metrics.readingsAccepted),
          readingsRejected: rejected.reduce((a, v) => a + v.value, 0),
          readingsDropped: await counterSum(metrics.readingsDropped),
          readingsOverwritten: await counterSum(metrics.readingsOverwritten),
          messagesReceived: await counterSum(metrics.messagesReceived),
          outboxDepth: s.depth,
          outboxOldestAgeS: s.oldestArrival === null ? 0 : (now - s.oldestArrival) / 1000,
          outboxBytes: s.bytes,
          writeErrors: await counterSum(metrics.sinkWriteErrors),
          writeLatencyMs: forwarder.status.lastWriteMs,
          inferenceLatencyMs: model.inferenceRuns > 0 ? model.meanLatencyMs : null,
          clientsConnected: broker.connectedClients(),
          rssBytes: mem.rss,
          heapUsedBytes: mem.heapUsed,
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          openAlerts: alerts.openCount(),
          rejectsByReason: Object.fromEntries(rejected.map((v) => [String(v.labels.reason), v.value])),
          machines: machines.list().map((m) => {
            const d = det.get(m.id);
            const ageS = (now - m.lastArrival) / 1000;
            let status: MachineStatusName = 'healthy';
            if (config.alerts.silenceAfterMs > 0 && ageS * 1000 > config.alerts.silenceAfterMs) status = 'silent';
            else if (openByMachine.has(m.id)) status = 'alert';
            else if (d?.anomalyOpen || (d?.lastScore != null && d.threshold != null && d.lastScore > d.threshold)) status = 'anomaly';
            else if (d?.phase === 'learning') status = 'learning';
            return { machine: m.id, status, score: d?.lastScore, threshold: d?.threshold, baselineProgress: d?.progress, lastSeenAgeS: ageS };
          }),
        };
      },
      (lines) => {
        aux.push(lines);
        return Promise.resolve({ ok: true });
      },
      logger.child({ component: 'health' }),
    );
    health.start();
    cleanups.push(() => health.stop());

    logger.info(
      { mqtt: `${config.mqtt.host}:${ports.mqtt}`, http: `${config.http.host}:${httpPort}`, sink: sink.name, dataDir, version, host: hostname() },
      'smartops-gateway started',
    );

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        const t0 = Date.now();
        logger.info('stopping: no new connections, finishing stores in progress');
        await broker.stopAccepting(Math.min(2000, config.shutdownTimeoutMs));
        await broker.close();
        // Flush the outbox to the sink within the remaining time; what is left waits for the next start.
        await forwarder.stop(Math.max(0, config.shutdownTimeoutMs - (Date.now() - t0)));
        const left = outbox.stats().depth;
        await cleanup();
        logger.info({ leftInOutbox: left, ms: Date.now() - t0 }, 'stopped');
      })();
      return stopping;
    };
    if (outboxFatalEarly) throw outboxFatalEarly;
    let reportFailure: (err: GatewayError) => void = () => undefined;
    const failed = new Promise<never>((_, reject) => {
      reportFailure = reject;
    });
    // Handled here too, so a caller that does not watch `failed` gets no unhandled rejection.
    failed.catch(() => undefined);
    onOutboxFatal = (err) => {
      void stop().finally(() => reportFailure(err));
    };
    return { mqttPort: ports.mqtt, httpPort, wsPort: ports.ws, tlsPort: ports.tls, sinkType: sink.name, logger, stop, failed };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
