/** Messages between the benchmark orchestrator (bench.ts) and its load-generator child processes (loadgen.ts). */

export type InitMsg =
  | {
      role: 'pub';
      host: string;
      port: number;
      /** Machine ids this process publishes for, one MQTT connection each. */
      machines: string[];
      qos: 0 | 1;
      /** Readings per message: 1 = single reading, > 1 = a {"readings": [...]} batch. */
      batch: number;
      /** QoS 1: most unacknowledged messages per connection (the publisher waits beyond it). */
      window: number;
      /** Machines whose (newest ts, publish time) pairs are reported, for publish-to-stored latency. */
      probes: string[];
    }
  | { role: 'sub'; host: string; port: number; filter: string }
  | { role: 'influx'; url: string; db: string; batchSize: number; concurrency: number; durationMs: number; series: number };

export type CmdMsg =
  | { cmd: 'rate'; readingsPerSec: number }
  /** Publish history (event time fromTs..toTs every stepMs) for every machine, QoS 1, and wait for all acks. */
  | { cmd: 'backfill'; fromTs: number; toTs: number; stepMs: number }
  /** Publish one reading per machine now, at QoS 1, with the given metric overrides (fault injection). */
  | { cmd: 'stop'; drainMs: number };

export interface PubReport {
  type: 'report';
  at: number;
  connected: number;
  disconnects: number;
  sentMsgs: number;
  sentReadings: number;
  ackedMsgs: number;
  ackedReadings: number;
  inflight: number;
  /** Messages the pacer could not send on time (window full / socket congested), dropped from the schedule. */
  skipped: number;
  /** Ack latency histogram counts since the previous report (stats.ts Hist layout). */
  ackHist: number[];
  ackMax: number;
  /** [machine, newest reading ts in the message, publish wall time] for probe machines since the previous report. */
  probes: [string, number, number][];
  cpuUserUs: number;
  cpuSystemUs: number;
}

export interface SubReport {
  type: 'report';
  at: number;
  received: number;
  cpuUserUs: number;
  cpuSystemUs: number;
}

export interface InfluxReport {
  type: 'done';
  points: number;
  requests: number;
  errors: number;
  elapsedMs: number;
  latP50Ms: number | null;
  latP99Ms: number | null;
  cpuUserUs: number;
  cpuSystemUs: number;
}

export type ChildMsg =
  | PubReport
  | SubReport
  | InfluxReport
  | { type: 'ready'; connectMs: number }
  | { type: 'backfilled'; readings: number; ms: number }
  | { type: 'stopped'; unacked: number }
  | { type: 'error'; message: string };
