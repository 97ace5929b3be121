/** Prometheus metrics of the alerts module (prefix `smartops_alerts_`). */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface AlertsMetrics {
  transitions: Counter<'event' | 'kind'>;
  conditions: Counter<'kind' | 'active'>;
  conditionsIgnored: Counter<'reason'>;
  errors: Counter<'op'>;
  notifications: Counter<'sink' | 'outcome'>;
  webhookAttempts: Counter<'webhook' | 'outcome'>;
  webhookDropped: Counter<'webhook' | 'reason'>;
  webhookQueueDepth: Gauge<'webhook'>;
  streamClients: Gauge;
  streamRejected: Counter<'reason'>;
  rulesOverflow: Counter<'rule'>;
}

/**
 * @param activeCounts read at scrape time, so the open-alert gauge is always the store's truth.
 */
export function createAlertsMetrics(
  registry: Registry,
  activeCounts: () => Array<{ kind: string; severity: string; state: string; count: number }>,
): AlertsMetrics {
  const registers = [registry];
  new Gauge({
    name: 'smartops_alerts_active',
    help: 'Open and acknowledged alerts, by kind, severity and state',
    labelNames: ['kind', 'severity', 'state'],
    registers,
    collect() {
      this.reset();
      for (const c of activeCounts()) this.set({ kind: c.kind, severity: c.severity, state: c.state }, c.count);
    },
  });
  return {
    transitions: new Counter({ name: 'smartops_alerts_transitions_total', help: 'Alert transitions (opened, updated, acknowledged, resolved)', labelNames: ['event', 'kind'], registers }),
    conditions: new Counter({ name: 'smartops_alerts_conditions_total', help: 'Condition events received (active or clear)', labelNames: ['kind', 'active'], registers }),
    conditionsIgnored: new Counter({ name: 'smartops_alerts_conditions_ignored_total', help: 'Condition events that changed nothing, by reason', labelNames: ['reason'], registers }),
    errors: new Counter({ name: 'smartops_alerts_errors_total', help: 'Internal errors while processing alerts (logged), by operation', labelNames: ['op'], registers }),
    notifications: new Counter({ name: 'smartops_alerts_notifications_total', help: 'Alert notifications by sink (mqtt, influx, webhook) and outcome (ok, error, dropped)', labelNames: ['sink', 'outcome'], registers }),
    webhookAttempts: new Counter({ name: 'smartops_alerts_webhook_attempts_total', help: 'Webhook delivery attempts by outcome (ok, http_error, network_error, timeout)', labelNames: ['webhook', 'outcome'], registers }),
    webhookDropped: new Counter({ name: 'smartops_alerts_webhook_dropped_total', help: 'Webhook transitions given up, by reason (queue_full, attempts_exhausted, rejected, shutdown)', labelNames: ['webhook', 'reason'], registers }),
    webhookQueueDepth: new Gauge({ name: 'smartops_alerts_webhook_queue_depth', help: 'Transitions waiting for a webhook (in flight included)', labelNames: ['webhook'], registers }),
    streamClients: new Gauge({ name: 'smartops_alerts_stream_clients', help: 'Connected SSE clients of /api/v1/alerts/stream', registers }),
    streamRejected: new Counter({ name: 'smartops_alerts_stream_rejected_total', help: 'SSE clients refused or disconnected, by reason (too_many, slow_client)', labelNames: ['reason'], registers }),
    rulesOverflow: new Counter({ name: 'smartops_alerts_rules_machines_ignored_total', help: 'Readings of machines beyond the rules\' tracking bound (10000 machines), by rule', labelNames: ['rule'], registers }),
  };
}
