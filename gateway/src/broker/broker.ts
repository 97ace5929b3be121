/**
 * Embedded MQTT broker (aedes) with TCP, optional WebSocket and optional TLS listeners.
 *
 * Telemetry is validated and made durable inside aedes' `authorizePublish` hook: aedes writes the
 * QoS 1 PUBACK (and QoS 2 PUBREC) only after that hook calls back (lib/handlers/publish.js), so a
 * publisher is acknowledged only for readings that are on disk.
 *
 * MQTT-3.3.5-2: a PUBLISH the server does not authorize is either acknowledged or the connection
 * is closed; we close it (the device sees the refusal in its own logs) and count it.
 */
import { type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { readFileSync } from 'node:fs';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from 'pino';
import type { Duplex } from 'node:stream';
import { TELEMETRY_TOPIC_PATTERN } from '../contract/reading.js';
import type { CoreMetrics } from '../obs/metrics.js';
import { RateLimitedLog } from '../obs/logger.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import type { DeviceIdentity, MqttAcl } from '../auth/mqtt-acl.js';
import type { Ingest } from '../ingest/ingest.js';
import type { IngestGate } from '../ingest/gate.js';
import { Counter, Gauge } from 'prom-client';
import mqttPacket from 'mqtt-packet';
import { guardPacketSize, type OversizePacket } from './frame-guard.js';
import { ExactlyOnce, type IncomingStore } from './exactly-once.js';
import { OfflineQueueBound, type OutgoingQueues } from './offline-queue.js';
import { GatewayAedes, type IndexLimits } from './routing.js';
import { LoginThrottle, DEFAULT_THROTTLE, type ThrottleOptions } from '../auth/throttle.js';

export interface BrokerOptions {
  host: string;
  port: number;
  ws: { enabled: boolean; host: string; port: number };
  tls: { enabled: boolean; host: string; port: number; certFile?: string | undefined; keyFile?: string | undefined; caFile?: string | undefined; requireClientCert: boolean };
  maxConnections: number;
  connectTimeoutMs: number;
  drainTimeoutMs: number;
  maxInflightPerClient: number;
  /**
   * Largest MQTT packet accepted (bytes of Remaining Length). Default: ingest's payload limit plus
   * PACKET_OVERHEAD_BYTES for the topic, packet id and MQTT 5 properties.
   */
  maxPacketBytes?: number;
  /**
   * Bytes that may wait in a client's socket buffer (deliveries it has not read yet). A client
   * above it is disconnected (slow_consumer), so one stuck subscriber cannot grow memory.
   */
  maxQueuedBytesPerClient?: number;
  /** QoS 1/2 messages queued for a persistent session while its client is offline (offline-queue.ts). */
  maxOfflineMessagesPerClient?: number;
  /** Failed MQTT logins allowed per client address and window before it is refused unchecked. */
  loginThrottle?: ThrottleOptions;
  /** Bounds of the routing skip's filter index (routing.ts); tests lower them. */
  routingLimits?: IndexLimits;
}

export const DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT = 4 * 1024 * 1024;
export const DEFAULT_MAX_OFFLINE_MESSAGES_PER_CLIENT = 1000;

type Deliver = (packet: unknown, cb: () => void) => void;
const noop = (): void => undefined;

/** Room above ingest.maxPayloadBytes for the rest of a PUBLISH packet (topic, packet id, properties). */
export const PACKET_OVERHEAD_BYTES = 4096;

const LOOPBACK = /^(127\.|::1$|localhost$)/;

export interface BrokerDeps {
  ingest: Ingest;
  acl: MqttAcl;
  metrics: CoreMetrics;
  logger: Logger;
  /** Ingest back-pressure: telemetry waits here while the durable-append queue is full. */
  gate?: IngestGate;
}

export interface BrokerPorts {
  mqtt: number;
  ws?: number;
  tls?: number;
}

const IDENTITY = Symbol('smartops.identity');
type ClientWithIdentity = Client & { [IDENTITY]?: DeviceIdentity };

function listen(server: NetServer, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(new GatewayError(ErrorCodes.LISTEN_FAILED, `${what} cannot listen on ${host}:${port}: ${e.code ?? e.message} (is another broker running? change the port in config)`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The peer address of a client: its TCP/TLS socket, or the HTTP request of a WebSocket. */
function remoteAddress(client: Client): string {
  const c = client as unknown as { conn?: { remoteAddress?: string }; req?: { socket?: { remoteAddress?: string } } };
  return c.conn?.remoteAddress ?? c.req?.socket?.remoteAddress ?? 'unknown';
}

function closeServer(server: { close(cb: (err?: Error) => void): unknown }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
  });
}

export class Broker {
  readonly aedes: GatewayAedes;
  private readonly servers: NetServer[] = [];
  private wss: WebSocketServer | undefined;
  private readonly rlog: RateLimitedLog;
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly dropped: Counter<'reason'>;
  private readonly drainTimedOut = new WeakSet<Client>();
  private readonly throttle: LoginThrottle;
  private readonly exactlyOnce: ExactlyOnce;
  readonly maxPacketBytes: number;
  private readonly maxQueuedBytes: number;
  ports: BrokerPorts = { mqtt: 0 };

  private constructor(
    aedes: GatewayAedes,
    private readonly opts: BrokerOptions,
    private readonly deps: BrokerDeps,
  ) {
    this.aedes = aedes;
    this.rlog = new RateLimitedLog(deps.logger, 10000);
    this.maxPacketBytes = opts.maxPacketBytes ?? deps.ingest.maxPayloadBytes + PACKET_OVERHEAD_BYTES;
    this.maxQueuedBytes = opts.maxQueuedBytesPerClient ?? DEFAULT_MAX_QUEUED_BYTES_PER_CLIENT;
    this.throttle = new LoginThrottle(opts.loginThrottle ?? DEFAULT_THROTTLE);
    this.dropped = new Counter({
      name: 'smartops_mqtt_clients_dropped_total',
      help: 'MQTT connections closed or refused by the gateway to protect others, by reason (max_connections, packet_too_large, slow_consumer, drain_timeout)',
      labelNames: ['reason'],
      registers: [deps.metrics.registry],
    });
    for (const r of ['max_connections', 'packet_too_large', 'slow_consumer', 'drain_timeout']) this.dropped.inc({ reason: r }, 0);
    const duplicates = new Counter({
      name: 'smartops_mqtt_qos2_duplicates_total',
      help: 'QoS 2 telemetry PUBLISHes resent with a packet id still awaiting PUBREL: acknowledged again, not stored again (MQTT-4.3.3-2)',
      registers: [deps.metrics.registry],
    });
    const offlineDropped = new Counter({
      name: 'smartops_mqtt_offline_dropped_total',
      help: 'QoS 1/2 messages not queued for an offline persistent session (CleanSession=0) because it already had mqtt.maxOfflineMessagesPerClient waiting',
      registers: [deps.metrics.registry],
    });
    // aedes' own in-memory persistence (GatewayAedes refuses any other).
    const persistence = (aedes as unknown as { persistence?: OutgoingQueues & IncomingStore }).persistence;
    if (persistence) {
      const clients = (aedes as unknown as { clients: Record<string, unknown> }).clients;
      const limit = opts.maxOfflineMessagesPerClient ?? DEFAULT_MAX_OFFLINE_MESSAGES_PER_CLIENT;
      const bound = new OfflineQueueBound(persistence, {
        limit,
        online: (id) => clients[id] !== undefined,
        onDrop: (clientId) => {
          offlineDropped.inc();
          this.rlog.warn(
            `offline_full:${clientId}`,
            { clientId, limit },
            'mqtt persistent session offline with a full queue: newer messages are not queued for it (reconnect it, or subscribe with a clean session if it does not need them)',
          );
        },
      });
      new Gauge({
        name: 'smartops_mqtt_queued_messages',
        help: 'QoS 1/2 messages held for persistent sessions (CleanSession=0): the backlog of offline clients plus those in flight to online ones',
        registers: [deps.metrics.registry],
        collect() {
          this.set(bound.total());
        },
      });
    }
    this.exactlyOnce = new ExactlyOnce(() => persistence, () => duplicates.inc());
    // Read at scrape time: a counter increment per message would cost more than the skip saves.
    let reported = 0;
    new Counter({
      name: 'smartops_mqtt_publishes_unrouted_total',
      help: 'PUBLISHes from clients that no subscription could match, so aedes\' routing (subscription match, offline queue lookup, emit) was skipped',
      registers: [deps.metrics.registry],
      collect() {
        const n = aedes.unroutedPublishes;
        if (n > reported) this.inc(n - reported);
        reported = n;
      },
    });
    new Gauge({
      name: 'smartops_mqtt_routing_filters',
      help: 'Distinct topic filters the routing skip knows of (every filter ever subscribed); -1 once it has switched itself off (too many filters) and every publish is routed',
      registers: [deps.metrics.registry],
      collect() {
        this.set(aedes.routing.enabled ? aedes.routing.filters : -1);
      },
    });
  }

  static async create(opts: BrokerOptions, deps: BrokerDeps): Promise<Broker> {
    let self: Broker | undefined;
    // mqtt-packet (aedes' encoder) otherwise builds, on the first packet id it writes, a cache of all
    // 65,536 two-byte ids: ~7 MB of live heap for the life of the process (bench/README "Memory").
    // Without it each PUBACK allocates its 2 bytes (mqtt.js offers the same switch as `writeCache`).
    mqttPacket.writeToStream.cacheNumbers = false;
    const aedes = await GatewayAedes.start({
      connectTimeout: opts.connectTimeoutMs,
      drainTimeout: opts.drainTimeoutMs,
      maxInflightInbound: opts.maxInflightPerClient,
      authenticate: (client, username, password, done) => {
        (self as Broker).authenticate(client as ClientWithIdentity, username, password, done);
      },
      authorizePublish: (client, packet, done) => {
        (self as Broker).authorizePublish(client as ClientWithIdentity | null, packet, done);
      },
      authorizeSubscribe: (client, sub, done) => {
        (self as Broker).authorizeSubscribe(client as ClientWithIdentity, sub, done);
      },
    }, {
      ...(opts.routingLimits ? { limits: opts.routingLimits } : {}),
      // The same decision as authorizeSubscribe, for the filters aedes stores with a granted one.
      mayStore: (client, filter) => {
        const identity = (client as ClientWithIdentity)[IDENTITY];
        return identity !== undefined && deps.acl.canSubscribe(identity, filter);
      },
      onIndexOff: (reason) => {
        deps.logger.warn({ reason }, 'mqtt routing skip switched off: every publish is routed by aedes from now on (correct, a little more CPU per message)');
      },
    });
    self = new Broker(aedes, opts, deps);
    self.wireEvents();
    return self;
  }

  private wireEvents(): void {
    const { metrics, logger } = this.deps;
    this.aedes.on('client', (c) => {
      metrics.mqttClientsConnected.inc();
      metrics.mqttConnections.inc({ event: 'connect' });
      logger.info({ clientId: c.id, username: (c as ClientWithIdentity)[IDENTITY]?.username ?? null }, 'mqtt client connected');
    });
    this.aedes.on('clientDisconnect', (c) => {
      metrics.mqttClientsConnected.dec();
      metrics.mqttConnections.inc({ event: 'disconnect' });
      logger.info({ clientId: c.id }, 'mqtt client disconnected');
    });
    this.aedes.on('clientError', (c, err) => {
      // aedes destroys a client that has not drained its socket within drainTimeout (lib/client.js).
      // (aedes reports it once per pending write: count the client once.)
      if (err.message === 'drain timeout' && !this.drainTimedOut.has(c)) {
        this.drainTimedOut.add(c);
        this.dropped.inc({ reason: 'drain_timeout' });
      }
      this.rlog.warn(`clientError:${err.message.slice(0, 40)}`, { clientId: c.id, error: err.message }, 'mqtt client error');
    });
    // A WebSocket message over ws' maxPayload (sized from the packet limit) is refused by ws
    // before the packet guard sees it: count it the same way.
    const wsTooBig = (c: Client, err: Error): void => {
      if ((err as NodeJS.ErrnoException).code !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return;
      this.dropped.inc({ reason: 'packet_too_large' });
      this.deps.ingest.reject('(WebSocket message)', Buffer.alloc(0), c.id ?? null, 'payload_too_large', `WebSocket message over the ${this.maxPacketBytes}-byte MQTT packet limit; connection closed`);
    };
    this.aedes.on('clientError', wsTooBig);
    this.aedes.on('connectionError', wsTooBig);
    this.aedes.on('connectionError', (_c, err) => {
      this.rlog.warn('connectionError', { error: err.message }, 'mqtt connection error before CONNECT');
    });
  }

  private authenticate(
    client: ClientWithIdentity,
    username: Readonly<string> | undefined,
    password: Readonly<Buffer> | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const address = remoteAddress(client);
    if (this.throttle.blocked(address)) {
      this.deps.metrics.mqttAuthFailures.inc({ reason: 'throttled' });
      this.rlog.warn(`throttled:${address}`, { clientId: client.id, username: username ?? null, address }, 'mqtt connection refused without a password check: too many failed logins from this address');
      const err = new Error('not authorized: too many failed logins, retry later') as AuthenticateError;
      err.returnCode = 5;
      done(err, false);
      return;
    }
    this.deps.acl.authenticate(username, password as Buffer | undefined).then(
      (r) => {
        if (r.ok) {
          client[IDENTITY] = r.identity;
          done(null, true);
          return;
        }
        this.throttle.failed(address);
        this.deps.metrics.mqttAuthFailures.inc({ reason: r.reason });
        this.rlog.warn(`auth:${r.reason}`, { clientId: client.id, username: username ?? null, reason: r.reason, address }, 'mqtt connection refused');
        const err = new Error(r.reason === 'anonymous_not_allowed' ? 'not authorized' : 'bad username or password') as AuthenticateError;
        // CONNACK return codes (MQTT 3.1.1 table 3.1): 4 bad user name or password, 5 not authorized.
        err.returnCode = r.reason === 'anonymous_not_allowed' ? 5 : 4;
        done(err, false);
      },
      (e: unknown) => {
        const err = new Error(`authentication failed: ${(e as Error).message}`) as AuthenticateError;
        err.returnCode = 3;
        done(err, false);
      },
    );
  }

  private authorizePublish(client: ClientWithIdentity | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    if (!client) return done(null); // the broker's own publishes (alerts)
    const identity = client[IDENTITY];
    if (!identity || !this.deps.acl.canPublish(identity, packet.topic)) {
      this.deps.metrics.mqttAuthFailures.inc({ reason: 'publish_denied' });
      this.deps.ingest.reject(packet.topic, packet.payload as Buffer, client.id, 'not_authorized', `client may not publish to ${packet.topic}`);
      return done(new Error(`not authorized to publish to ${packet.topic}`));
    }
    if (!TELEMETRY_TOPIC_PATTERN.test(packet.topic) && !packet.topic.startsWith('machines/')) return done(null);
    // A retained PUBLISH with an empty payload removes the topic's retained message (MQTT-3.3.1-10):
    // an MQTT housekeeping action that carries no reading, so it is neither stored nor a rejection.
    if (packet.retain && packet.payload.length === 0) return done(null);
    if (packet.qos === 2) return this.exactlyOnce.admit(client, packet, (d) => this.accept(client, packet, d), done);
    this.accept(client, packet, done);
  }

  /** Validate and store a telemetry message; `done` is called after the durable commit (or the refusal). */
  private accept(client: ClientWithIdentity, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // Counted from here (also while held by the gate) so a graceful stop waits for it.
    this.inflight++;
    const gate = this.deps.gate;
    // A closure only for a message the gate holds: most run at once.
    if (gate && !gate.admitsNow()) gate.run(() => this.store(client, packet, payload, done));
    else this.store(client, packet, payload, done);
  }

  private store(client: ClientWithIdentity, packet: PublishPacket, payload: Buffer, done: (error?: Error | null) => void): void {
    // A callback, not a promise: called once, after the durable commit (or the refusal).
    let called = false;
    try {
      this.deps.ingest.submit(packet.topic, payload, client.id, (r) => {
        called = true;
        this.settle();
        if (r.status === 'unavailable') {
          // QoS 1/2 publishers resend what was not acknowledged; only QoS 0 readings are lost.
          if (packet.qos === 0) this.deps.metrics.readingsDropped.inc({ reason: 'outbox_full_qos0' }, r.count);
          return done(new Error(`not stored: ${r.detail}`));
        }
        // Accepted, or rejected and counted: acknowledge either way (an invalid message will never
        // become valid, and holding it would make the publisher resend it forever).
        done(null);
      });
    } catch (e) {
      // A bug in the ingest path before its callback: refuse this message, as a failed promise did.
      if (called) throw e;
      this.settle();
      done(e as Error);
    }
  }

  private settle(): void {
    this.inflight--;
    if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private authorizeSubscribe(client: ClientWithIdentity, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    const identity = client[IDENTITY];
    if (identity && this.deps.acl.canSubscribe(identity, sub.topic)) return done(null, sub);
    this.deps.metrics.mqttAuthFailures.inc({ reason: 'subscribe_denied' });
    this.rlog.warn('subscribe_denied', { clientId: client.id, topic: sub.topic }, 'mqtt subscription refused');
    // MQTT-3.9.3: SUBACK return code 0x80 (failure) for this filter; the connection stays up.
    done(null, null);
  }

  /** An oversized packet: counted as a rejected message (payload_too_large) and a dropped client. */
  private onOversize(stream: Duplex, p: OversizePacket): void {
    const clientId = (stream as Duplex & { client?: { id?: string | null } }).client?.id ?? null;
    this.dropped.inc({ reason: 'packet_too_large' });
    this.deps.ingest.reject(
      p.topic ?? `(MQTT packet type ${p.packetType}, topic not read)`,
      Buffer.alloc(0),
      clientId,
      'payload_too_large',
      `MQTT packet of ${p.declaredBytes} bytes exceeds the ${this.maxPacketBytes}-byte limit (ingest.maxPayloadBytes + ${PACKET_OVERHEAD_BYTES}); connection closed before reading it`,
      p.declaredBytes,
    );
  }

  /**
   * Decouple publishers from subscribers. aedes completes a publish only when every subscriber's
   * socket has taken the message (lib/client.js deliver0/deliverQoS wait for 'drain'), and keeps
   * queueing for a subscriber that does not read until drainTimeout: one stuck subscriber to `#`
   * buffered 300 MB in 4 s in our test. Here each delivery is handed to the socket and completed
   * at once; a subscriber whose unread backlog passes maxQueuedBytesPerClient is disconnected.
   * (aedes' drainTimeout still applies to the writes already queued.) Must run before the client
   * subscribes: aedes takes these functions at SUBSCRIBE time (lib/handlers/subscribe.js).
   */
  private guardSlowConsumer(client: Client, stream: Duplex): void {
    const c = client as unknown as { id: string | null; deliver0: Deliver; deliverQoS: Deliver };
    const wrap = (orig: Deliver): Deliver => (packet, cb) => {
      if (stream.destroyed) return void setImmediate(cb);
      if (stream.writableLength > this.maxQueuedBytes) {
        this.dropped.inc({ reason: 'slow_consumer' });
        this.rlog.warn(
          'slow_consumer',
          { clientId: c.id, queuedBytes: stream.writableLength, limit: this.maxQueuedBytes },
          'mqtt client disconnected: it does not read what it subscribed to (mqtt.maxQueuedBytesPerClient)',
        );
        stream.destroy(new Error(`slow consumer: more than ${this.maxQueuedBytes} bytes unread`));
        return void setImmediate(cb);
      }
      orig.call(client, packet, noop);
      setImmediate(cb);
    };
    c.deliver0 = wrap(c.deliver0);
    c.deliverQoS = wrap(c.deliverQoS);
  }

  private onMaxConnections(listener: string): void {
    this.dropped.inc({ reason: 'max_connections' });
    this.rlog.warn(`maxconn:${listener}`, { listener, maxConnections: this.opts.maxConnections }, 'mqtt connection refused: mqtt.maxConnections reached');
  }

  private warnIfAnonymousExposed(listener: string, host: string): void {
    if (!this.deps.acl.anonymousAllowed || LOOPBACK.test(host)) return;
    this.deps.logger.warn(
      { listener, host },
      `!!! ANONYMOUS MQTT ACCESS IS ON FOR A NON-LOOPBACK ADDRESS (${listener} listener on ${host}): anyone on the network can publish readings and subscribe to everything. Configure mqtt.users and set mqtt.allowAnonymous=false (README "Security").`,
    );
  }

  async listen(): Promise<BrokerPorts> {
    const o = this.opts;
    const handle = (stream: Duplex, req?: unknown): void => {
      guardPacketSize(stream, this.maxPacketBytes, (p) => this.onOversize(stream, p));
      const client = this.aedes.handle(stream as never, req as never) as unknown as Client;
      this.guardSlowConsumer(client, stream);
    };
    const tcp = createNetServer((socket) => handle(socket));
    // net.Server closes connections above maxConnections at once and emits 'drop' for each.
    tcp.maxConnections = o.maxConnections;
    tcp.on('drop', () => this.onMaxConnections('tcp'));
    this.servers.push(tcp);
    this.warnIfAnonymousExposed('tcp', o.host);
    this.ports = { mqtt: await listen(tcp, o.port, o.host, 'MQTT') };
    if (o.tls.enabled) {
      if (!o.tls.certFile || !o.tls.keyFile) {
        throw new GatewayError(ErrorCodes.CONFIG_INVALID, 'mqtt.tls.enabled needs mqtt.tls.certFile and mqtt.tls.keyFile');
      }
      if (o.tls.requireClientCert && !o.tls.caFile) {
        throw new GatewayError(ErrorCodes.CONFIG_INVALID, 'mqtt.tls.requireClientCert needs mqtt.tls.caFile to verify client certificates');
      }
      const tls = createTlsServer(
        {
          cert: readFileSync(o.tls.certFile),
          key: readFileSync(o.tls.keyFile),
          ...(o.tls.caFile ? { ca: readFileSync(o.tls.caFile) } : {}),
          requestCert: o.tls.requireClientCert,
          rejectUnauthorized: o.tls.requireClientCert,
        },
        (socket) => handle(socket),
      );
      tls.maxConnections = o.maxConnections;
      tls.on('drop', () => this.onMaxConnections('tls'));
      // A failed handshake (no or untrusted client certificate, plain MQTT on the TLS port) never
      // reaches aedes: count and log it here.
      tls.on('tlsClientError', (err) => {
        this.deps.metrics.mqttAuthFailures.inc({ reason: 'tls_handshake' });
        this.rlog.warn('tls_handshake', { error: err.message }, 'mqtt TLS handshake refused');
      });
      this.servers.push(tls);
      this.warnIfAnonymousExposed('tls', o.tls.host);
      this.ports.tls = await listen(tls, o.tls.port, o.tls.host, 'MQTT TLS');
    }
    if (o.ws.enabled) {
      const { createServer } = await import('node:http');
      const httpServer = createServer();
      // One WebSocket message may carry one or several MQTT packets; the packet guard still applies.
      const wss = new WebSocketServer({ server: httpServer, maxPayload: this.maxPacketBytes + 16 });
      wss.on('connection', (ws, req) => {
        if (wss.clients.size > o.maxConnections) {
          this.onMaxConnections('ws');
          ws.close(1013, 'too many connections');
          return;
        }
        handle(createWebSocketStream(ws), req);
      });
      this.wss = wss;
      this.warnIfAnonymousExposed('ws', o.ws.host);
      this.servers.push(httpServer as unknown as NetServer);
      this.ports.ws = await listen(httpServer as unknown as NetServer, o.ws.port, o.ws.host, 'MQTT WebSocket');
    }
    return this.ports;
  }

  /** Publish from the gateway itself (alerts), QoS 1 to subscribers. */
  publish(topic: string, payload: string, qos: 0 | 1 = 1): Promise<void> {
    return new Promise((resolve, reject) => {
      this.aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false }, (err) => (err ? reject(err) : resolve()));
    });
  }

  connectedClients(): number {
    return this.aedes.connectedClients;
  }

  /** Stop accepting connections and wait for publishes being stored to finish (their acks go out). */
  async stopAccepting(timeoutMs: number): Promise<void> {
    await Promise.all(this.servers.map((s) => {
      const p = closeServer(s);
      return Promise.race([p, new Promise<void>((r) => setTimeout(r, 50))]);
    }));
    if (this.inflight > 0) {
      await Promise.race([new Promise<void>((r) => this.idleWaiters.push(r)), new Promise<void>((r) => setTimeout(r, timeoutMs))]);
    }
  }

  /** Disconnect clients and release the listeners. */
  private closing: Promise<void> | undefined;

  /** Idempotent: a graceful stop closes the broker early, and the start-up cleanup list closes it again. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.wss?.close();
      for (const c of this.wss?.clients ?? []) c.terminate();
      await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
      await Promise.all(this.servers.map((s) => closeServer(s)));
    })();
    return this.closing;
  }
}
