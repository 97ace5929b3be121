/**
 * Prometheus metrics of the core pipeline. Modules that own other metrics (detection, alerts)
 * register them on the same Registry themselves.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECT_REASONS } from '../contract/reading.js';

export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'smartops_' });
  registerResidentMemoryByKind(registry);
  return registry;
}

const RSS_KINDS = { anon: 'RssAnon', file: 'RssFile', shmem: 'RssShmem' } as const;

/** RssAnon / RssFile / RssShmem of /proc/self/status in bytes; null where there is no such file (not Linux). */
export function residentMemoryByKind(): Record<keyof typeof RSS_KINDS, number> | null {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const out = { anon: 0, file: 0, shmem: 0 };
  for (const [kind, field] of Object.entries(RSS_KINDS) as [keyof typeof RSS_KINDS, string][]) {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!m) return null;
    out[kind] = Number(m[1]) * 1024;
  }
  return out;
}

/**
 * RSS split into anonymous memory (V8 heap, malloc: what the gateway's own state costs) and
 * file-backed pages (the node binary's and native modules' code, ~75 MB, shared and reclaimable),
 * which process_resident_memory_bytes lumps together. Linux only: /proc/self/status is a
 * counter read, cheap enough for every scrape.
 */
function registerResidentMemoryByKind(registry: Registry): void {
  if (!residentMemoryByKind()) return;
  new Gauge({
    name: 'smartops_process_resident_memory_by_kind_bytes',
    help: 'Resident memory by kind: anon (V8 heap, native allocations), file (mapped code of node and native modules), shmem',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const r = residentMemoryByKind();
      if (!r) return;
      for (const [kind, bytes] of Object.entries(r)) this.set({ kind }, bytes);
    },
  });
}

export interface CoreMetrics {
  registry: Registry;
  messagesReceived: Counter<'transport'>;
  readingsAccepted: Counter;
  readingsTsFromArrival: Counter;
  messagesRejected: Counter<'reason'>;
  readingsOverwritten: Counter;
  readingsDropped: Counter<'reason'>;
  mqttClientsConnected: Gauge;
  mqttConnections: Counter<'event'>;
  mqttAuthFailures: Counter<'reason'>;
  sinkBatchesWritten: Counter<'sink'>;
  sinkReadingsWritten: Counter<'sink'>;
  sinkWriteErrors: Counter<'sink' | 'kind'>;
  sinkWriteRetries: Counter<'sink'>;
  sinkWriteLatency: Histogram<'sink'>;
  sinkQuarantined: Counter<'sink'>;
  outboxDepth: Gauge;
  outboxBytes: Gauge;
  outboxOldestAgeSeconds: Gauge;
  outboxBudgetBytes: Gauge;
  outboxCommitLatency: Histogram;
  outboxMemoryRows: Gauge;
  outboxReads: Counter<'source'>;
  outboxAcks: Counter<'mode'>;
  outboxAckRetries: Counter;
  httpAuthFailures: Counter<'reason'>;
}

export function createCoreMetrics(registry: Registry): CoreMetrics {
  const m: CoreMetrics = {
    registry,
    messagesReceived: new Counter({ name: 'smartops_mqtt_messages_received_total', help: 'Telemetry messages received', labelNames: ['transport'], registers: [registry] }),
    readingsAccepted: new Counter({ name: 'smartops_readings_accepted_total', help: 'Readings validated and durably stored in the outbox', registers: [registry] }),
    readingsTsFromArrival: new Counter({ name: 'smartops_readings_ts_from_arrival_total', help: 'Accepted readings without ts (gateway arrival time used)', registers: [registry] }),
    messagesRejected: new Counter({ name: 'smartops_messages_rejected_total', help: 'Messages rejected, by reason', labelNames: ['reason'], registers: [registry] }),
    readingsOverwritten: new Counter({ name: 'smartops_readings_overwritten_total', help: 'Accepted readings with the same timestamp as their machine\'s previous reading and another value for one of its metrics: storage keeps one point per machine and millisecond, so the earlier value is overwritten (the device stamps several samples with one time)', registers: [registry] }),
    readingsDropped: new Counter({ name: 'smartops_readings_dropped_total', help: 'Readings deleted without reaching the sink, by reason (e.g. outbox_full_drop_oldest)', labelNames: ['reason'], registers: [registry] }),
    mqttClientsConnected: new Gauge({ name: 'smartops_mqtt_clients_connected', help: 'Connected MQTT clients', registers: [registry] }),
    mqttConnections: new Counter({ name: 'smartops_mqtt_connection_events_total', help: 'MQTT client connects and disconnects', labelNames: ['event'], registers: [registry] }),
    mqttAuthFailures: new Counter({ name: 'smartops_mqtt_auth_failures_total', help: 'MQTT authentication and authorization refusals', labelNames: ['reason'], registers: [registry] }),
    sinkBatchesWritten: new Counter({ name: 'smartops_sink_batches_written_total', help: 'Batches confirmed by the sink', labelNames: ['sink'], registers: [registry] }),
    sinkReadingsWritten: new Counter({ name: 'smartops_sink_readings_written_total', help: 'Readings confirmed by the sink', labelNames: ['sink'], registers: [registry] }),
    sinkWriteErrors: new Counter({ name: 'smartops_sink_write_errors_total', help: 'Failed sink writes, by kind', labelNames: ['sink', 'kind'], registers: [registry] }),
    sinkWriteRetries: new Counter({ name: 'smartops_sink_write_retries_total', help: 'Sink write retries', labelNames: ['sink'], registers: [registry] }),
    sinkWriteLatency: new Histogram({ name: 'smartops_sink_write_duration_seconds', help: 'Sink write latency', labelNames: ['sink'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    sinkQuarantined: new Counter({ name: 'smartops_sink_quarantined_total', help: 'Readings the sink refused as malformed (kept in quarantine)', labelNames: ['sink'], registers: [registry] }),
    outboxDepth: new Gauge({ name: 'smartops_outbox_depth', help: 'Readings waiting in the outbox', registers: [registry] }),
    outboxBytes: new Gauge({ name: 'smartops_outbox_bytes', help: 'Bytes of readings waiting in the outbox (counted against the budget)', registers: [registry] }),
    outboxOldestAgeSeconds: new Gauge({ name: 'smartops_outbox_oldest_age_seconds', help: 'Age of the oldest reading waiting in the outbox', registers: [registry] }),
    outboxBudgetBytes: new Gauge({ name: 'smartops_outbox_budget_bytes', help: 'Outbox disk budget', registers: [registry] }),
    outboxCommitLatency: new Histogram({ name: 'smartops_outbox_commit_duration_seconds', help: 'Group commit (transaction + fsync) latency', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry] }),
    outboxMemoryRows: new Gauge({ name: 'smartops_outbox_memory_rows', help: 'Unsent readings the forwarder can read from memory instead of SQLite', registers: [registry] }),
    outboxReads: new Counter({ name: 'smartops_outbox_reads_total', help: 'Forwarder reads of the outbox, by source (memory, or sqlite when memory does not hold the head)', labelNames: ['source'], registers: [registry] }),
    outboxAcks: new Counter({ name: 'smartops_outbox_acks_total', help: 'Deletes of readings the sink confirmed, by mode (posted: the gateway went on at once; waited: a small one with the writer thread idle, or after a restart)', labelNames: ['mode'], registers: [registry] }),
    outboxAckRetries: new Counter({ name: 'smartops_outbox_ack_retries_total', help: 'Retries of a confirmed delete the writer thread failed to run (the readings stay counted as delivered)', registers: [registry] }),
    httpAuthFailures: new Counter({ name: 'smartops_http_auth_failures_total', help: 'HTTP requests refused for missing/invalid token or scope', labelNames: ['reason'], registers: [registry] }),
  };
  // Make every reason visible at 0 so dashboards and alerts on rates work from the start.
  for (const r of REJECT_REASONS) m.messagesRejected.inc({ reason: r }, 0);
  for (const r of ['outbox_full_drop_oldest', 'quarantine_overflow', 'outbox_full_qos0']) m.readingsDropped.inc({ reason: r }, 0);
  for (const s of ['memory', 'sqlite']) m.outboxReads.inc({ source: s }, 0);
  for (const s of ['posted', 'waited']) m.outboxAcks.inc({ mode: s }, 0);
  return m;
}
