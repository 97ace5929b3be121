import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { SimError } from '../errors.js';

/** Credentials and TLS files (PEM paths), as the CLIs take them. */
export interface BrokerAuthOptions {
  username?: string;
  password?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Accept a server certificate that does not verify (test brokers only). */
  insecure?: boolean;
  clientId?: string;
}

/** How to reach the broker. */
export interface BrokerOptions extends BrokerAuthOptions {
  url: string;
  /** Publishes awaiting completion (QoS 1: PUBACK; QoS 0: written to the socket) at most. */
  maxInflight?: number;
  /** Reconnect back-off bounds, ms (doubling from min to max; reset after a successful connect). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export interface PublisherStats {
  messages: number;
  readings: number;
  errors: number;
  reconnects: number;
  inflight: number;
  connected: boolean;
  lastError?: string;
}

/**
 * A bounded MQTT publisher: at most `maxInflight` publishes outstanding, `publish` waits while the
 * window is full or the client is disconnected (so nothing piles up in memory), reconnects with
 * exponential back-off, and counts every failure.
 */
export class Publisher {
  readonly client: MqttClient;
  private readonly maxInflight: number;
  private ending = false;
  private readonly waiters: Array<() => void> = [];
  private readonly s: PublisherStats = { messages: 0, readings: 0, errors: 0, reconnects: 0, inflight: 0, connected: false };

  private constructor(client: MqttClient, maxInflight: number) {
    this.client = client;
    this.maxInflight = maxInflight;
  }

  /** Connect (waits for the first CONNACK or fails with the broker's error). */
  static async connect(o: BrokerOptions, log: (line: string) => void = () => {}): Promise<Publisher> {
    const min = o.reconnectMinMs ?? 500;
    const max = o.reconnectMaxMs ?? 30_000;
    const opts: IClientOptions = {
      clientId: o.clientId ?? `smartops-sim-${process.pid}-${Math.floor(Date.now() % 1e6)}`,
      reconnectPeriod: min,
      connectTimeout: 10_000,
      clean: true,
      // we bound memory ourselves: never queue while offline
      queueQoSZero: false,
    };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    const readPem = (p: string, what: string): Buffer => {
      try {
        return readFileSync(p);
      } catch (e) {
        throw new SimError('SIM_BAD_OPTION', `--${what} ${p}: cannot read (${(e as Error).message})`);
      }
    };
    if (o.ca) opts.ca = readPem(o.ca, 'ca');
    if (o.cert) opts.cert = readPem(o.cert, 'cert');
    if (o.key) opts.key = readPem(o.key, 'key');
    if (o.insecure) opts.rejectUnauthorized = false;
    const client = mqtt.connect(o.url, opts);
    const pub = new Publisher(client, Math.max(1, o.maxInflight ?? 100));
    client.on('connect', () => {
      pub.s.connected = true;
      client.options.reconnectPeriod = min;
      pub.wake();
    });
    client.on('close', () => {
      if (pub.s.connected && !pub.ending) log(`broker ${o.url}: connection lost, reconnecting`);
      pub.s.connected = false;
    });
    client.on('reconnect', () => {
      pub.s.reconnects++;
      // exponential back-off for the next attempt
      client.options.reconnectPeriod = Math.min(max, (client.options.reconnectPeriod ?? min) * 2);
    });
    client.on('error', (e) => {
      pub.s.lastError = e.message;
      log(`broker ${o.url}: ${e.message}`);
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new SimError('SIM_BAD_OPTION', `broker ${o.url}: no connection within 15 s${pub.s.lastError ? ` (${pub.s.lastError})` : ''}`)), 15_000);
      client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      client.once('error', (e) => {
        // bad credentials and the like are not worth retrying at start
        if (/not authori[sz]ed|bad user/i.test(e.message)) {
          clearTimeout(t);
          client.end(true);
          reject(new SimError('SIM_BAD_OPTION', `broker ${o.url}: ${e.message}`));
        }
      });
    });
    return pub;
  }

  get stats(): Readonly<PublisherStats> {
    return { ...this.s };
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.s.connected && this.s.inflight < this.maxInflight) this.waiters.shift()?.();
  }

  private async slot(): Promise<void> {
    while (!this.s.connected || this.s.inflight >= this.maxInflight) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /**
   * Publish one message carrying `readings` readings. Resolves once a window slot is taken (not
   * when the broker acknowledges): call `drain()` to wait for completion.
   */
  async publish(topic: string, payload: string, qos: 0 | 1, readings: number): Promise<void> {
    await this.slot();
    this.s.inflight++;
    this.client.publish(topic, payload, { qos }, (err) => {
      this.s.inflight--;
      if (err) {
        this.s.errors++;
        this.s.lastError = err.message;
      } else {
        this.s.messages++;
        this.s.readings += readings;
      }
      this.wake();
    });
  }

  /** Wait until every publish has completed (acked at QoS 1). */
  async drain(): Promise<void> {
    while (this.s.inflight > 0) await new Promise((r) => setTimeout(r, 20));
  }

  async end(): Promise<void> {
    this.ending = true;
    await this.client.endAsync();
  }
}
