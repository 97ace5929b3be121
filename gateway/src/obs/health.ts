/**
 * Self-monitoring written to the sink next to the readings (measurements `gateway`,
 * `gateway_rejects`, `machine_status`), so Grafana needs one InfluxQL datasource and no Prometheus.
 */
import type { Logger } from 'pino';
import { formatPoint } from '../sinks/lineprotocol.js';
import type { WriteOutcome } from '../sinks/sink.js';

export type MachineStatusName = 'healthy' | 'learning' | 'anomaly' | 'alert' | 'silent';

export interface MachineStatusPoint {
  machine: string;
  status: MachineStatusName;
  score?: number | null | undefined;
  threshold?: number | null | undefined;
  baselineProgress?: number | undefined;
  lastSeenAgeS: number;
}

export interface HealthSnapshot {
  host: string;
  readingsAccepted: number;
  readingsRejected: number;
  /** Readings deleted before the sink had them (smartops_readings_dropped_total, every reason). */
  readingsDropped: number;
  /** Readings that overwrote a value of their machine's previous reading (same timestamp). */
  readingsOverwritten: number;
  messagesReceived: number;
  outboxDepth: number;
  outboxOldestAgeS: number;
  outboxBytes: number;
  writeErrors: number;
  writeLatencyMs: number | null;
  inferenceLatencyMs: number | null;
  clientsConnected: number;
  rssBytes: number;
  heapUsedBytes: number;
  cpuSeconds: number;
  openAlerts: number;
  rejectsByReason: Record<string, number>;
  machines: MachineStatusPoint[];
}

const int = (n: number): { int: number } => ({ int: Math.trunc(n) });
const num = (n: number | null | undefined): number | undefined => (n === null || n === undefined || !Number.isFinite(n) ? undefined : n);

export function healthLines(s: HealthSnapshot, ts: number): string[] {
  const lines = [
    formatPoint(
      'gateway',
      { host: s.host },
      {
        readings_accepted: int(s.readingsAccepted),
        readings_rejected: int(s.readingsRejected),
        readings_dropped: int(s.readingsDropped),
        readings_overwritten: int(s.readingsOverwritten),
        messages_received: int(s.messagesReceived),
        outbox_depth: int(s.outboxDepth),
        outbox_oldest_age_s: s.outboxOldestAgeS,
        outbox_bytes: int(s.outboxBytes),
        write_errors: int(s.writeErrors),
        write_latency_ms: num(s.writeLatencyMs),
        inference_latency_ms: num(s.inferenceLatencyMs),
        clients_connected: int(s.clientsConnected),
        rss_bytes: int(s.rssBytes),
        heap_used_bytes: int(s.heapUsedBytes),
        cpu_seconds: s.cpuSeconds,
        open_alerts: int(s.openAlerts),
      },
      ts,
    ),
  ];
  for (const [reason, count] of Object.entries(s.rejectsByReason)) {
    lines.push(formatPoint('gateway_rejects', { host: s.host, reason }, { count: int(count) }, ts));
  }
  for (const m of s.machines) {
    lines.push(
      formatPoint(
        'machine_status',
        { machine: m.machine },
        { status: m.status, score: num(m.score), threshold: num(m.threshold), baseline_progress: num(m.baselineProgress), last_seen_age_s: m.lastSeenAgeS },
        ts,
      ),
    );
  }
  return lines;
}

/** Writes a health snapshot every interval; a failed write is logged (rate-limited by the caller's cadence) and skipped. */
export class HealthWriter {
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  constructor(
    private readonly intervalMs: number,
    private readonly snapshot: () => Promise<HealthSnapshot>,
    private readonly write: (lines: string[]) => Promise<WriteOutcome>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.once(), this.intervalMs);
    this.timer.unref();
  }

  async once(now = Date.now()): Promise<void> {
    try {
      const out = await this.write(healthLines(await this.snapshot(), now));
      if (!out.ok) {
        this.failures++;
        // Health points are derived data: skipped, not queued, so an outage cannot grow memory.
        if (this.failures === 1 || this.failures % 30 === 0) this.logger.warn({ error: out.message, failures: this.failures }, 'health write skipped');
      } else this.failures = 0;
    } catch (e) {
      this.logger.warn({ err: e }, 'health snapshot failed');
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
