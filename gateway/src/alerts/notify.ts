/**
 * Fan-out of alert transitions to MQTT, InfluxDB and webhooks. Fire-and-forget by design: the
 * lifecycle has already committed the transition; a notifier failure is counted and logged only.
 */
import type { Logger } from 'pino';
import { alertsTopic } from '../contract/reading.js';
import { formatPoint } from '../sinks/lineprotocol.js';
import type { AlertsMetrics } from './metrics.js';
import type { AlertTransition } from './types.js';
import type { Webhooks } from './webhooks.js';

/** Publishes one message (QoS 1) on the embedded broker; injected by main.ts. */
export type PublishMqtt = (topic: string, payload: string) => Promise<void>;
/** Hands line-protocol lines (timestamps in milliseconds) to the sink; injected by main.ts. */
export type WriteInflux = (lineProtocolLines: string[]) => void;

/** MQTT publishes awaiting their promise; beyond this new ones are dropped (counted) instead of piling up. */
export const MAX_MQTT_INFLIGHT = 1000;

/**
 * The `alerts` measurement (see docs: InfluxDB schema). time = the transition's time, ms precision.
 * score is the peak score (what the alert is about), threshold the one it was compared with.
 */
export function alertLine(t: AlertTransition, at: number = t.at): string {
  const a = t.alert;
  const score = a.peakScore ?? a.score;
  return formatPoint(
    'alerts',
    { machine: a.machine, kind: a.kind, severity: a.severity },
    {
      id: a.id,
      state: a.state,
      event: t.event,
      message: a.message,
      score: score ?? undefined,
      threshold: a.threshold ?? undefined,
      contributors: a.contributorsText,
    },
    at,
  );
}

/**
 * InfluxDB identifies a point by series + timestamp, so two transitions of one alert in the same
 * millisecond (an ack and a resolve from a script) would overwrite each other. Each series gets
 * strictly increasing timestamps: a clash moves the later event 1 ms on.
 */
export class SeriesClock {
  private readonly last = new Map<string, number>();
  constructor(private readonly maxSeries = 10_000) {}

  next(series: string, at: number): number {
    const prev = this.last.get(series);
    const ts = prev !== undefined && at <= prev ? prev + 1 : at;
    this.last.delete(series);
    if (this.last.size >= this.maxSeries) this.last.delete(this.last.keys().next().value as string);
    this.last.set(series, ts);
    return ts;
  }
}

export interface NotifierDeps {
  logger: Logger;
  metrics: AlertsMetrics;
  publishMqtt?: PublishMqtt | undefined;
  writeInflux?: WriteInflux | undefined;
  webhooks: Webhooks;
}

export class Notifier {
  private readonly clock = new SeriesClock();
  private mqttInflight = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly d: NotifierDeps) {}

  notify(t: AlertTransition): void {
    this.mqtt(t);
    this.influx(t);
    try {
      this.d.webhooks.send(t);
    } catch (e) {
      this.d.logger.error({ err: e, alert: t.alert.id }, 'webhook enqueue failed');
    }
  }

  private mqtt(t: AlertTransition): void {
    const publish = this.d.publishMqtt;
    if (!publish) return;
    const { metrics, logger } = this.d;
    if (this.mqttInflight >= MAX_MQTT_INFLIGHT) {
      metrics.notifications.inc({ sink: 'mqtt', outcome: 'dropped' });
      logger.warn({ alert: t.alert.id, event: t.event }, `MQTT alert publish dropped: ${MAX_MQTT_INFLIGHT} publishes still pending`);
      return;
    }
    this.mqttInflight++;
    let p: Promise<void>;
    try {
      p = publish(alertsTopic(t.alert.machine), JSON.stringify(t));
    } catch (e) {
      p = Promise.reject(e);
    }
    const tracked = p.then(
      () => {
        metrics.notifications.inc({ sink: 'mqtt', outcome: 'ok' });
      },
      (e: unknown) => {
        metrics.notifications.inc({ sink: 'mqtt', outcome: 'error' });
        logger.warn({ err: e, alert: t.alert.id, event: t.event }, 'MQTT alert publish failed');
      },
    ).finally(() => {
      this.mqttInflight--;
      this.pending.delete(tracked);
    });
    this.pending.add(tracked);
  }

  private influx(t: AlertTransition): void {
    const write = this.d.writeInflux;
    if (!write) return;
    try {
      const a = t.alert;
      write([alertLine(t, this.clock.next(`${a.machine}|${a.kind}|${a.severity}`, t.at))]);
      this.d.metrics.notifications.inc({ sink: 'influx', outcome: 'ok' });
    } catch (e) {
      this.d.metrics.notifications.inc({ sink: 'influx', outcome: 'error' });
      this.d.logger.warn({ err: e, alert: t.alert.id, event: t.event }, 'writing the alert to InfluxDB failed');
    }
  }

  /** Wait (bounded) for MQTT publishes in flight, then stop the webhooks. */
  async close(waitMs = 2000): Promise<void> {
    if (this.pending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.pending]),
        new Promise<void>((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]);
      clearTimeout(timer);
    }
    await this.d.webhooks.close();
  }
}
