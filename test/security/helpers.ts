/**
 * Helpers for the security and fuzz tests: Prometheus scraping, and a raw MQTT 3.1.1 client over a
 * plain socket for the misbehaviour a well-behaved library (mqtt.js) will not produce: never
 * reading, declaring a 10 MB packet, sending half a packet.
 */
import { connect, type Socket } from 'node:net';

/** Samples of a Prometheus text exposition: `name{a="b",c="d"}` (labels sorted) -> value. */
export async function scrape(httpUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${httpUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}="${x[2]}"`).sort();
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : (m[1] as string), Number(m[4]));
  }
  return out;
}

/** One sample, 0 when absent. Labels are given as an object. */
export function sample(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const l = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return samples.get(l.length ? `${name}{${l.join(',')}}` : name) ?? 0;
}

/** Sum of a metric over every label set. */
export function total(samples: Map<string, number>, name: string): number {
  let s = 0;
  for (const [k, v] of samples) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
}

/** All label sets of a metric with value, e.g. reason -> count. */
export function byLabel(samples: Map<string, number>, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of samples) {
    if (!k.startsWith(`${name}{`)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(k);
    if (m) out[m[1] as string] = (out[m[1] as string] ?? 0) + v;
  }
  return out;
}

// --- raw MQTT 3.1.1 encoding (section 2 and 3 of the specification)

function varint(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    bytes.push(b);
  } while (n > 0);
  return Buffer.from(bytes);
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

export const mqttPackets = {
  connect(clientId: string, opts: { username?: string; password?: string; keepaliveS?: number } = {}): Buffer {
    let flags = 0x02; // clean session
    if (opts.username !== undefined) flags |= 0x80;
    if (opts.password !== undefined) flags |= 0x40;
    const ka = Buffer.alloc(2);
    ka.writeUInt16BE(opts.keepaliveS ?? 60);
    const parts = [str('MQTT'), Buffer.from([4, flags]), ka, str(clientId)];
    if (opts.username !== undefined) parts.push(str(opts.username));
    if (opts.password !== undefined) parts.push(str(opts.password));
    return packet(0x10, Buffer.concat(parts));
  },
  subscribe(packetId: number, filter: string, qos: 0 | 1 = 0): Buffer {
    const id = Buffer.alloc(2);
    id.writeUInt16BE(packetId);
    return packet(0x82, Buffer.concat([id, str(filter), Buffer.from([qos])]));
  },
  publish(topic: string, payload: Buffer, qos: 0 | 1 = 0, packetId = 1): Buffer {
    const parts = [str(topic)];
    if (qos > 0) {
      const id = Buffer.alloc(2);
      id.writeUInt16BE(packetId);
      parts.push(id);
    }
    parts.push(payload);
    return packet(0x30 | (qos << 1), Buffer.concat(parts));
  },
  /** Only the fixed header and topic of a PUBLISH that declares `declaredPayloadBytes`. */
  publishHeader(topic: string, declaredPayloadBytes: number): Buffer {
    const t = str(topic);
    return Buffer.concat([Buffer.from([0x30]), varint(t.length + declaredPayloadBytes), t]);
  },
};

export interface RawClient {
  socket: Socket;
  /** Resolves with the CONNACK return code. */
  connack: Promise<number>;
  closed: Promise<void>;
}

/**
 * Connect a raw socket, send CONNECT, and wait for CONNACK (the first 4 bytes). With `paused`, the
 * socket stops reading right after CONNACK, like a device whose firmware hung.
 */
export function rawConnect(port: number, clientId: string, opts: { username?: string; password?: string; paused?: boolean } = {}): RawClient {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const connack = new Promise<number>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4) {
        socket.off('data', onData);
        if (opts.paused) socket.pause();
        resolve(buf[3] as number);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error('closed before CONNACK')));
    socket.once('connect', () => socket.write(mqttPackets.connect(clientId, opts)));
  });
  connack.catch(() => undefined);
  return { socket, connack, closed };
}
