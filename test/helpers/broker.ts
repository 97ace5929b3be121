/**
 * The embedded Broker on its own (no gateway around it): real aedes on a free TCP port, the real
 * ingest and ACL, with the durable append replaced by the caller's stand-in. For options the
 * gateway's config does not reach and for the broker benchmark. Vitest-free, so bench/ uses it too.
 */
import pino from 'pino';
import type { Registry } from 'prom-client';
import { MqttAcl, type MqttUser } from '../../gateway/src/auth/mqtt-acl.js';
import { Broker, type BrokerOptions } from '../../gateway/src/broker/broker.js';
import { DEFAULT_LIMITS } from '../../gateway/src/contract/reading.js';
import { Ingest, type DurableAppend } from '../../gateway/src/ingest/ingest.js';
import { RejectLog } from '../../gateway/src/ingest/rejects.js';
import { createCoreMetrics, createRegistry } from '../../gateway/src/obs/metrics.js';

export interface BareBrokerOptions {
  /** Broker options over the defaults below (loopback, free port, no WebSocket or TLS). */
  broker?: Partial<BrokerOptions>;
  /** The durable append stand-in (default: accepts everything at once, stores nothing). */
  outbox?: DurableAppend;
  users?: MqttUser[];
  anonymous?: boolean;
}

export interface BareBroker {
  broker: Broker;
  registry: Registry;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startBareBroker(o: BareBrokerOptions = {}): Promise<BareBroker> {
  const registry = createRegistry();
  const metrics = createCoreMetrics(registry);
  const logger = pino({ level: 'silent' });
  const ingest = new Ingest({
    limits: DEFAULT_LIMITS,
    outbox: o.outbox ?? { append: async () => undefined },
    rejects: new RejectLog(10),
    metrics,
    logger,
    rejectLogIntervalMs: 10000,
    onAccepted: () => undefined,
  });
  const broker = await Broker.create(
    {
      host: '127.0.0.1',
      port: 0,
      ws: { enabled: false, host: '127.0.0.1', port: 0 },
      tls: { enabled: false, host: '127.0.0.1', port: 0, requireClientCert: false },
      maxConnections: 100,
      connectTimeoutMs: 5000,
      drainTimeoutMs: 30000,
      maxInflightPerClient: 100,
      ...o.broker,
    },
    { ingest, acl: new MqttAcl(o.users ?? [], o.anonymous ?? true), metrics, logger },
  );
  const port = (await broker.listen()).mqtt;
  return { broker, registry, port, url: `mqtt://127.0.0.1:${port}`, close: () => broker.close() };
}
