/**
 * Alerts facade: the only entry point main.ts uses.
 *
 *   const alerts = await createAlerts(config.alerts, { dataDir, logger, registry, publishMqtt, writeInflux, kindOf });
 *   detection.onCondition -> alerts.onCondition; accepted readings -> alerts.onReadings;
 *   setInterval(() => alerts.tick(), 1000); app.register(alertRoutes({ engine: alerts }));
 *   on stop: await alerts.close();
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConditionEvent } from '../contract/detection.js';
import type { Reading } from '../contract/reading.js';
import type { AlertsConfig } from './config.js';
import { AlertLifecycle } from './lifecycle.js';
import { firstSeqAt, TransitionLog } from './replay.js';
import { createAlertsMetrics } from './metrics.js';
import { Notifier, type PublishMqtt, type WriteInflux } from './notify.js';
import { type KindOf, LimitRules, SilenceRule } from './rules.js';
import { openAlertStore } from './store.js';
import type { Alert, AlertEngine, AlertListener, AlertPage, AlertQuery } from './types.js';
import { AlertError } from './types.js';
import { type Sleep, Webhooks } from './webhooks.js';

export { alertsConfigSchema, type AlertsConfig, type AlertsConfigInput } from './config.js';
export { alertRoutes } from './routes.js';
export type { PublishMqtt, WriteInflux } from './notify.js';
export type { KindOf } from './rules.js';
export * from './types.js';

export interface AlertsDeps {
  /** The alert store lives at `<dataDir>/alerts.sqlite`. */
  dataDir: string;
  logger: Logger;
  /** prom-client registry; metrics are named `smartops_alerts_*`. */
  registry: Registry;
  /** Publish on the embedded broker with QoS 1 (topic `machines/<id>/alerts`). Optional: no MQTT when absent. */
  publishMqtt?: PublishMqtt;
  /** Hand `alerts` line-protocol lines (ms timestamps) to the sink. Optional: nothing written when absent. */
  writeInflux?: WriteInflux;
  /** Machine kind from the registry (for per-kind limit rules). */
  kindOf: KindOf;
  /** Clock (epoch ms); tests inject one. */
  now?: () => number;
  /** Tests only: observe/shorten webhook back-off sleeps and fix the jitter. */
  webhook?: { sleep?: Sleep; random?: () => number };
}

const SEEN_FLUSH_MS = 30_000;
const PRUNE_EVERY_MS = 3600_000;
const DAY_MS = 24 * 3600_000;

export async function createAlerts(config: AlertsConfig, deps: AlertsDeps): Promise<AlertEngine> {
  const now = deps.now ?? Date.now;
  const logger = deps.logger.child({ module: 'alerts' });
  const store = openAlertStore(join(deps.dataDir, 'alerts.sqlite'));
  const metrics = createAlertsMetrics(deps.registry, () => (store.isOpen ? store.countActive() : []));
  const webhooks = new Webhooks(config.webhooks, {
    logger,
    metrics,
    ...(deps.webhook?.sleep ? { sleep: deps.webhook.sleep } : {}),
    ...(deps.webhook?.random ? { random: deps.webhook.random } : {}),
  });
  const notifier = new Notifier({ logger, metrics, publishMqtt: deps.publishMqtt, writeInflux: deps.writeInflux, webhooks });

  let silence: SilenceRule | undefined;
  const firstSeq = firstSeqAt(Date.now());
  const lifecycle = new AlertLifecycle({
    firstSeq,
    store,
    logger,
    metrics,
    publish: (t) => notifier.notify(t),
    now,
    updateNotifyIntervalMs: config.updateNotifyIntervalMs,
    topContributors: config.topContributors,
    onManualResolve: (a) => {
      // Resolving a silence alert by hand means "stop watching this machine until it sends again"
      // (decommissioned, moved): it must not come back at every restart.
      if (a.kind === 'silence') {
        silence?.forget(a.machine);
        store.forgetLastSeen(a.machine);
      }
    },
  });
  // Subscribed before any SSE client, so a reconnecting one finds every transition it missed.
  const replay = new TransitionLog(config.stream.replay, firstSeq);
  lifecycle.subscribe((t) => replay.push(t));

  let closed = false;
  const guard = (op: string, fn: () => void): void => {
    if (closed) return;
    try {
      fn();
    } catch (e) {
      metrics.errors.inc({ op });
      logger.error({ err: e, op }, `alerts: ${op} failed`);
    }
  };
  const onCondition = (e: ConditionEvent): void => guard('condition', () => lifecycle.onCondition(e));

  const bootTime = now();
  silence = new SilenceRule(config.silenceAfterMs, config.silenceSeverity, onCondition, bootTime, store.loadLastSeen());
  const limits = new LimitRules(config.limits, deps.kindOf, onCondition);

  // Rule state is in memory: re-attach the rules to the alerts still open from before a restart,
  // so those alerts clear when their condition does.
  for (const a of store.listActive()) {
    if (a.kind === 'limit') limits.seedActive(a.machine, a.startedAt, [...new Set(a.contributors.map((c) => c.metric))], a.severity, bootTime);
    else if (a.kind === 'silence') silence.seedActive(a.machine, bootTime);
  }

  let lastSeenFlush = bootTime;
  let lastPrune = -Infinity;
  const overflowSeen = { limit: 0, silence: 0 };
  const flushSeen = (): void => {
    const dirty = silence?.takeDirty() ?? [];
    if (dirty.length > 0) store.saveLastSeen(dirty);
  };
  const countOverflow = (): void => {
    for (const [rule, cur] of [['limit', limits.overflow], ['silence', silence?.overflow ?? 0]] as const) {
      const d = cur - overflowSeen[rule];
      if (d > 0) {
        metrics.rulesOverflow.inc({ rule }, d);
        logger.warn({ rule, machines: 10_000 }, `alerts: ${rule} rule tracks at most 10000 machines; readings of further machines are not checked`);
        overflowSeen[rule] = cur;
      }
    }
  };

  const open = (): void => {
    if (closed) throw new AlertError('ALERTS_CLOSED', 'the alert engine is shutting down');
  };

  logger.info(
    { open: store.listActive().length, limitRules: config.limits.length, silenceAfterMs: config.silenceAfterMs, webhooks: webhooks.senders.map((s) => s.name) },
    'alerts ready',
  );

  const engine: AlertEngine = {
    onCondition,
    onReadings(readings: Reading[]): void {
      guard('readings', () => {
        if (readings.length === 0) return;
        // One message carries one machine's readings (its topic names it): no Set per message then.
        const first = (readings[0] as Reading).machine;
        let one = true;
        for (const r of readings) {
          if (r.machine !== first) {
            one = false;
            break;
          }
        }
        if (one) silence?.seenOne(first, now());
        else silence?.seen(new Set(readings.map((r) => r.machine)), now());
        limits.onReadings(readings);
      });
    },
    tick(at?: number): void {
      const t = at ?? now();
      guard('tick', () => {
        silence?.tick(t);
        lifecycle.tick(t);
        countOverflow();
        if (t - lastSeenFlush >= SEEN_FLUSH_MS) {
          lastSeenFlush = t;
          flushSeen();
        }
        if (t - lastPrune >= PRUNE_EVERY_MS) {
          lastPrune = t;
          const n = store.pruneResolved(t - config.retentionDays * DAY_MS);
          if (n > 0) logger.info({ deleted: n, retentionDays: config.retentionDays }, 'deleted old resolved alerts');
        }
      });
    },
    list(query: AlertQuery): AlertPage {
      open();
      return store.list(query);
    },
    get(id: string): Alert | undefined {
      open();
      return store.get(id);
    },
    ack(id, by) {
      open();
      return lifecycle.ack(id, by);
    },
    resolve(id, by) {
      open();
      return lifecycle.resolve(id, by);
    },
    subscribe(listener: AlertListener) {
      return lifecycle.subscribe(listener);
    },
    openCount(): number {
      if (closed) return 0;
      return store.countActive().reduce((n, c) => n + c.count, 0);
    },
    machinesWithActive(): Set<string> {
      if (closed) return new Set();
      return new Set(store.machinesWithActive());
    },
    stream: {
      maxClients: config.stream.maxClients,
      heartbeatMs: config.stream.heartbeatMs,
      opened: () => metrics.streamClients.inc(),
      closed: () => metrics.streamClients.dec(),
      rejected: (reason) => metrics.streamRejected.inc({ reason }),
      since: (lastId) => replay.since(lastId),
      newest: () => replay.newest,
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        flushSeen();
      } catch (e) {
        logger.error({ err: e }, 'alerts: saving last-seen times failed');
      }
      await notifier.close();
      store.close();
    },
  };
  return engine;
}
