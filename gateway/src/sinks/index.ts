/** Picks the sink the config asks for, and where the readings API reads them back from. */
import { resolveSinkType } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { ErrorCodes, GatewayError } from '../errors.js';
import { EmbeddedStore, type ReadingSource } from '../store/embedded.js';
import { InfluxReadingSource } from './influx-query.js';
import { InfluxV1Sink } from './influx-v1.js';
import { InfluxV2Sink } from './influx-v2.js';
import type { ExtraTags } from './lineprotocol.js';
import type { Sink } from './sink.js';
import type { Registry } from 'prom-client';

export function createSink(
  config: Config,
  dataDir: string,
  tagsFor: (machine: string) => ExtraTags | undefined,
  registry?: Registry,
): { sink: Sink; readings: ReadingSource } {
  const sinkType = resolveSinkType(config);
  if (sinkType === 'embedded') {
    const store = new EmbeddedStore(dataDir, { retentionMs: config.store.retentionDays * 86400_000, maxBytes: config.store.maxBytes, registry });
    return { sink: store, readings: store };
  }
  const inf = config.influx;
  if (!inf.url) throw new GatewayError(ErrorCodes.CONFIG_INVALID, `sink.type ${sinkType} needs influx.url (e.g. --influx-url http://localhost:8086)`);
  let sink: Sink;
  if (sinkType === 'influxdb-v2') {
    const missing = (['org', 'bucket', 'token'] as const).filter((k) => !inf[k]);
    if (missing.length > 0) {
      throw new GatewayError(ErrorCodes.CONFIG_INVALID, `sink.type influxdb-v2 needs ${missing.map((k) => `influx.${k}`).join(', ')}`);
    }
    sink = new InfluxV2Sink({ url: inf.url, org: inf.org as string, bucket: inf.bucket as string, token: inf.token as string, timeoutMs: config.sink.timeoutMs, gzip: inf.gzip, tagsFor });
  } else {
    sink = new InfluxV1Sink({
      url: inf.url,
      database: inf.database,
      retentionPolicy: inf.retentionPolicy,
      username: inf.username,
      password: inf.password,
      createDatabase: inf.createDatabase,
      timeoutMs: config.sink.timeoutMs,
      gzip: inf.gzip,
      tagsFor,
    });
  }
  const readings = new InfluxReadingSource({
    url: inf.url,
    database: inf.database,
    username: inf.username,
    password: inf.password,
    token: sinkType === 'influxdb-v2' ? inf.token : undefined,
    timeoutMs: config.sink.timeoutMs,
  });
  return { sink, readings };
}
