/**
 * The single source of truth for every setting: its type, default and documentation.
 * README's configuration reference is generated from this file (`npm run docs:config`).
 * Every object is strict, so an unknown key fails at start-up with its path.
 */
import { z } from 'zod';
import { NAME_PATTERN } from '../contract/reading.js';
import { alertsConfigSchema } from '../alerts/config.js';
import { detectionConfigSchema } from '../detect/config.js';

const port = z.number().int().min(0).max(65535);
const ms = z.number().int().min(0);
const host = z.string().min(1);

// Line protocol cannot represent a trailing backslash or a newline in a tag value.
const tagValue = z
  .string()
  .min(1)
  .max(256)
  .refine((s) => !/[\r\n]/.test(s) && !s.endsWith('\\'), 'must not contain a newline or end with a backslash');

export const machineEntrySchema = z.strictObject({
  site: tagValue.optional().describe('Site tag written with every reading of this machine.'),
  line: tagValue.optional().describe('Production line tag written with every reading of this machine.'),
  kind: tagValue.optional().describe('Machine kind (e.g. "cnc", "compressor"): a tag, and the key for per-kind limit rules.'),
  description: z.string().max(500).optional().describe('Free text shown over HTTP.'),
});

export const mqttUserSchema = z.strictObject({
  username: z.string().min(1).max(128).describe('MQTT username.'),
  passwordHash: z
    .string()
    .regex(/^scrypt\$/, 'must be an scrypt hash made by `smartops-gateway user add`')
    .describe('scrypt hash of the password, as printed by `smartops-gateway user add`.'),
  publish: z
    .array(z.string().min(1))
    .default([])
    .describe('Topic filters this user may publish to besides its own machines (MQTT wildcards allowed).'),
  machines: z
    .array(z.string().regex(NAME_PATTERN))
    .default([])
    .describe('Machine ids this device may publish telemetry for (machines/<id>/...). Empty: the username itself is the machine id.'),
  subscribe: z.array(z.string().min(1)).default([]).describe('Topic filters this user may subscribe to.'),
});

export const httpTokenSchema = z.strictObject({
  name: z.string().min(1).max(64).describe('Who holds the token (shown in logs, never the token).'),
  tokenHash: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>, as printed by `smartops-gateway token add`')
    .describe('SHA-256 of the bearer token, as printed by `smartops-gateway token add`.'),
  scopes: z.array(z.enum(['read', 'ack', 'admin'])).min(1).describe('What the token may do: read (GET the API), ack (read, plus acknowledge/resolve alerts), admin (everything, including routes that declare no scope).'),
});

export const coreConfigShape = {
  dataDir: z
    .string()
    .min(1)
    .default('./data')
    .describe('Directory for the outbox, embedded store, baselines and alerts. Relative paths resolve against the working directory.'),
  shutdownTimeoutMs: ms
    .default(10000)
    .describe('Graceful stop (SIGTERM/SIGINT): how long to flush the outbox to the sink before exiting anyway. Data not yet written stays in the outbox for the next start.'),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level.'),
      pretty: z.enum(['auto', 'always', 'never']).default('auto').describe('Human-readable logs: auto = when stdout is a terminal; otherwise JSON lines.'),
    })
    .prefault({})
    .describe('Logging (pino).'),
  mqtt: z
    .strictObject({
      host: host.default('0.0.0.0').describe('Address the MQTT TCP listener binds to.'),
      port: port.default(1883).describe('MQTT TCP port (0 = pick a free port).'),
      allowAnonymous: z
        .boolean()
        .default(false)
        .describe('Accept clients without username/password. Off unless explicitly enabled; the gateway warns when it is on for a non-loopback address.'),
      users: z.array(mqttUserSchema).default([]).describe('MQTT users (devices) with hashed passwords and ACLs.'),
      usersFile: z
        .string()
        .optional()
        .describe('YAML/JSON file with a `users:` list (same shape as mqtt.users), managed with `smartops-gateway user add`.'),
      ws: z
        .strictObject({
          enabled: z.boolean().default(false).describe('Also serve MQTT over WebSocket.'),
          host: host.default('0.0.0.0').describe('WebSocket listener address.'),
          port: port.default(8083).describe('WebSocket listener port.'),
        })
        .prefault({})
        .describe('MQTT over WebSocket listener.'),
      tls: z
        .strictObject({
          enabled: z.boolean().default(false).describe('Serve MQTT over TLS (MQTTS).'),
          host: host.default('0.0.0.0').describe('TLS listener address.'),
          port: port.default(8883).describe('TLS listener port.'),
          certFile: z.string().optional().describe('PEM certificate file.'),
          keyFile: z.string().optional().describe('PEM private key file.'),
          caFile: z.string().optional().describe('PEM CA bundle used to verify client certificates.'),
          requireClientCert: z.boolean().default(false).describe('Require and verify a client certificate (needs caFile).'),
        })
        .prefault({})
        .describe('MQTT over TLS listener.'),
      maxConnections: z.number().int().min(1).default(2000).describe('Maximum concurrent MQTT connections per listener.'),
      connectTimeoutMs: ms.default(30000).describe('A client must send CONNECT within this time.'),
      drainTimeoutMs: ms
        .default(30000)
        .describe('A client that does not read what it is sent for this long is disconnected, so it cannot stall others.'),
      maxInflightPerClient: z
        .number()
        .int()
        .min(1)
        .default(1000)
        .describe('Maximum QoS 2 messages a client may have awaiting PUBREL.'),
      maxQueuedBytesPerClient: z
        .number()
        .int()
        .min(64 * 1024)
        .default(4 * 1024 * 1024)
        .describe('Messages waiting to be sent to one subscriber, bytes. A client that stops reading is disconnected when it has more waiting, so it cannot grow the gateway\'s memory or hold up publishers.'),
      maxOfflineMessagesPerClient: z
        .number()
        .int()
        .min(1)
        .default(1000)
        .describe('QoS 1/2 messages kept for a persistent session (CleanSession=0) while its client is offline; newer ones are not queued for it and are counted in smartops_mqtt_offline_dropped_total (as Mosquitto\'s max_queued_messages).'),
    })
    .prefault({})
    .describe('Embedded MQTT broker (aedes).'),
  http: z
    .strictObject({
      host: host.default('0.0.0.0').describe('Address the HTTP API binds to.'),
      port: port.default(8080).describe('HTTP API port (0 = pick a free port).'),
      bodyLimitBytes: z.number().int().min(1024).default(65536).describe('Largest accepted request body.'),
      requestTimeoutMs: ms.default(30000).describe('Requests that take longer are aborted.'),
      auth: z
        .enum(['none', 'token'])
        .default('none')
        .describe('`token`: every /api route needs `Authorization: Bearer <token>` with the right scope; /health, /ready, /metrics and /docs stay open.'),
      tokens: z.array(httpTokenSchema).default([]).describe('Bearer tokens (hashed) and their scopes.'),
      corsOrigins: z
        .array(z.string().min(1))
        .default([])
        .describe('Origins allowed by CORS. Empty (default): CORS headers are not sent.'),
      rateLimit: z
        .strictObject({
          max: z.number().int().min(1).default(600).describe('Requests per client address per window.'),
          windowMs: ms.min(1000).default(60000).describe('Rate-limit window.'),
        })
        .prefault({})
        .describe('Per-address HTTP rate limit (429 when exceeded).'),
    })
    .prefault({})
    .describe('HTTP API (fastify).'),
  ingest: z
    .strictObject({
      maxPayloadBytes: z.number().int().min(64).max(64 * 1024 * 1024).default(262144).describe('Largest accepted MQTT payload, bytes.'),
      maxReadingsPerBatch: z.number().int().min(1).default(1000).describe('Most readings in one batch message.'),
      maxMetricsPerReading: z.number().int().min(1).default(256).describe('Most metrics in one reading.'),
      maxFutureSkewMs: ms.default(300000).describe('A reading timestamp further ahead of the gateway clock is rejected.'),
      maxAgeMs: ms.default(30 * 24 * 3600 * 1000).describe('A reading timestamp older than this is rejected.'),
      maxMachines: z
        .number()
        .int()
        .min(1)
        .default(10000)
        .describe('Most distinct machine ids the gateway takes readings from (those it knows from before a restart included); readings of a further, new id are rejected as too_many_machines. Bounds per-machine state and InfluxDB series when a device sends a wrong or changing id.'),
      rejectsKept: z.number().int().min(0).max(10000).default(100).describe('How many recent rejects GET /api/v1/rejects shows.'),
      rejectLogIntervalMs: ms.default(10000).describe('At most one reject log line per reason per interval (the rest are counted).'),
      maxPendingReadings: z
        .number()
        .int()
        .min(1)
        .max(1000000)
        .default(2000)
        .describe('Back-pressure: when this many validated readings wait for the outbox commit, the broker stops reading from publishers until it is done (nothing is refused; counted in smartops_ingest_backpressure_*). Bounds the work of one event-loop turn, so the forwarder keeps its share under overload.'),
    })
    .prefault({})
    .describe('Reading validation limits (see "Reading contract").'),
  outbox: z
    .strictObject({
      fsync: z
        .enum(['always', 'os'])
        .default('always')
        .describe('always: every group commit is fsynced before publishers get their PUBACK (survives power loss); os: the OS flushes (survives a gateway crash, not a power cut; faster on slow disks).'),
      commitIntervalMs: ms.max(1000).default(2).describe('Group commit: appends arriving within this window share one transaction and one fsync.'),
      maxBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(1024 * 1024 * 1024)
        .describe('Disk budget for readings waiting to be written to the sink.'),
      fullPolicy: z
        .enum(['reject', 'drop-oldest'])
        .default('reject')
        .describe('When the budget is full: reject = hold acknowledgements (back-pressure publishers), then disconnect them after fullWaitMs; drop-oldest = delete the oldest waiting readings (counted).'),
      fullWaitMs: ms.default(5000).describe('reject policy: how long a publisher is held before it is disconnected (it retries its unacknowledged QoS 1/2 messages on reconnect).'),
      readyThreshold: z.number().min(0.1).max(1).default(0.9).describe('GET /ready fails when the outbox uses more than this share of maxBytes.'),
      quarantineKeep: z
        .number()
        .int()
        .min(0)
        .max(1000000)
        .default(10000)
        .describe('Most readings kept in quarantine (refused by the sink as malformed, GET /api/v1/quarantine); beyond it the oldest are deleted and counted in smartops_readings_dropped_total{reason="quarantine_overflow"}.'),
    })
    .prefault({})
    .describe('Durable store-and-forward outbox (SQLite WAL) between ingest and the sink.'),
  sink: z
    .strictObject({
      type: z
        .enum(['auto', 'embedded', 'influxdb-v1', 'influxdb-v2'])
        .default('auto')
        .describe('Where readings go. auto: influxdb-v2 when influx.token/org/bucket are set, influxdb-v1 when influx.url is set, else embedded.'),
      // 10,000 rather than InfluxData's 5,000: under load the forwarder's round trip waits for the busy
      // event loop several times per write, so fewer, larger writes keep up (bench/README "Young generation and batch size").
      batchSize: z.number().int().min(1).max(100000).default(10000).describe('Most readings per write.'),
      flushIntervalMs: ms.min(10).default(200).describe('A partial batch is written after this long.'),
      timeoutMs: ms.min(100).default(10000).describe('Timeout of one write request.'),
      retryInitialMs: ms.min(10).default(500).describe('First retry delay after a failed write (doubles each time, with jitter).'),
      retryMaxMs: ms.min(10).default(60000).describe('Longest retry delay. Writes are retried forever: nothing is dropped.'),
    })
    .prefault({})
    .describe('Sink writer.'),
  influx: z
    .strictObject({
      url: z.string().url().optional().describe('InfluxDB base URL, e.g. http://localhost:8086.'),
      database: z.string().min(1).default('smartops').describe('1.x: database (created when missing). 2.x/3.x via the v1 API: the DBRP-mapped database.'),
      retentionPolicy: z.string().optional().describe('1.x: retention policy to write to (default: the database default).'),
      username: z.string().optional().describe('1.x: username.'),
      password: z.string().optional().describe('1.x: password (secret).'),
      org: z.string().optional().describe('2.x: organisation.'),
      bucket: z.string().optional().describe('2.x: bucket.'),
      token: z.string().optional().describe('2.x: API token (secret).'),
      createDatabase: z.boolean().default(true).describe('1.x: create the database at start-up if it does not exist.'),
      gzip: z
        .boolean()
        .default(false)
        .describe(
          'Compress write bodies of 1,000 bytes or more with gzip (Content-Encoding: gzip), about 8x smaller. Off by default: with InfluxDB on the same box or LAN it only costs CPU (about 1.6 us per reading, 16 ms per 10,000-reading batch); turn it on when InfluxDB is across a slow or metered link.',
        ),
    })
    .prefault({})
    .describe('InfluxDB connection.'),
  store: z
    .strictObject({
      retentionDays: z.number().min(0.01).default(7).describe('Embedded store: readings older than this are deleted.'),
      maxBytes: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(4 * 1024 * 1024 * 1024)
        .describe('Embedded store: disk budget of the readings (checked every minute); past it the oldest readings are deleted first, counted in smartops_store_readings_expired_total{reason="budget"}.'),
    })
    .prefault({})
    .describe('Embedded SQLite store (used when no InfluxDB is configured).'),
  health: z
    .strictObject({
      intervalMs: ms.min(1000).default(10000).describe('How often the gateway writes its own health and per-machine status to InfluxDB (measurements gateway, gateway_rejects, machine_status).'),
    })
    .prefault({})
    .describe('Self-monitoring written to the sink.'),
  machines: z
    .record(z.string().regex(NAME_PATTERN, 'machine ids must match [A-Za-z0-9_.-]{1,64}'), machineEntrySchema)
    .default({})
    .describe('Optional machine registry: id -> {site, line, kind}. Registry tags are added to every reading.'),
  detection: detectionConfigSchema.prefault({}),
  alerts: alertsConfigSchema,
};

export const configSchema = z.strictObject(coreConfigShape);

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Paths whose values are secrets: redacted in --print-config and never logged. */
export const SECRET_PATHS = ['influx.password', 'influx.token', 'mqtt.users.*.passwordHash', 'http.tokens.*.tokenHash', 'alerts.webhooks.*.headers', 'alerts.webhooks.*.url'];
