/**
 * A minimal MQTT 3.1.1 client over a raw TCP socket, for load generation only.
 *
 * Why not mqtt.js: at 20-40k messages/s on a 2-core box the client's own CPU cost decides the
 * figure. Here a PUBLISH is one Buffer written to the socket and a PUBACK is 4 bytes read back,
 * so the load generator stays a small share of the machine and the benchmark measures the broker.
 * Only what the benchmark needs: CONNECT (clean session, keep-alive off), PUBLISH QoS 0/1,
 * PUBACK, SUBSCRIBE (QoS 1, acknowledging what it receives), DISCONNECT.
 * Encoding: OASIS MQTT 3.1.1, sections 2.2 (fixed header, remaining length), 3.1 CONNECT,
 * 3.2 CONNACK, 3.3 PUBLISH, 3.4 PUBACK, 3.8 SUBSCRIBE, 3.9 SUBACK, 3.14 DISCONNECT.
 */
import { connect as netConnect, type Socket } from 'node:net';

/** Remaining-length varint (MQTT 3.1.1 section 2.2.3). */
function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function utf8Field(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

export function encodeConnect(clientId: string): Buffer {
  // Protocol name "MQTT", level 4, flags 0x02 = clean session, keep-alive 0 = off (3.1.2.10).
  const variable = Buffer.concat([utf8Field('MQTT'), Buffer.from([4, 0x02, 0, 0])]);
  const payload = utf8Field(clientId);
  const body = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]);
}

/** PUBLISH with the topic pre-encoded (2-byte length + bytes), so the hot path only copies. */
export function encodePublish(topicField: Buffer, payload: Buffer, qos: 0 | 1, packetId: number): Buffer {
  const rl = topicField.length + (qos > 0 ? 2 : 0) + payload.length;
  const rlb = remainingLength(rl);
  const out = Buffer.allocUnsafe(1 + rlb.length + rl);
  let o = 0;
  out[o++] = 0x30 | (qos << 1);
  rlb.copy(out, o);
  o += rlb.length;
  topicField.copy(out, o);
  o += topicField.length;
  if (qos > 0) {
    out.writeUInt16BE(packetId, o);
    o += 2;
  }
  payload.copy(out, o);
  return out;
}

export function topicField(topic: string): Buffer {
  return utf8Field(topic);
}

export interface RawClientEvents {
  onPuback?: (packetId: number) => void;
  onPublish?: (topic: string, payload: Buffer, qos: number) => void;
  onClose?: (hadError: boolean) => void;
}

export class RawMqttClient {
  readonly socket: Socket;
  private buf: Buffer | null = null;
  private connected = false;
  private nextId = 1;
  private connackWaiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private subackWaiter: (() => void) | null = null;

  private constructor(socket: Socket, private readonly ev: RawClientEvents) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', (hadError) => {
      this.connected = false;
      this.connackWaiter?.reject(new Error('connection closed before CONNACK'));
      this.connackWaiter = null;
      ev.onClose?.(hadError);
    });
    socket.on('error', () => undefined); // 'close' follows and is reported
  }

  static connect(host: string, port: number, clientId: string, ev: RawClientEvents, timeoutMs = 15_000): Promise<RawMqttClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ host, port });
      const c = new RawMqttClient(socket, ev);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`MQTT CONNACK from ${host}:${port} not received within ${timeoutMs} ms`));
      }, timeoutMs);
      c.connackWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve(c);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      socket.once('connect', () => socket.write(encodeConnect(clientId)));
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** Next packet id, 1..65535 (0 is not allowed, 2.3.1). Callers keep fewer than 65535 in flight. */
  allocId(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  /** Write a pre-encoded packet. Returns false when the socket buffer is above its high-water mark. */
  write(packet: Buffer): boolean {
    return this.socket.write(packet);
  }

  subscribe(filter: string, qos: 0 | 1): Promise<void> {
    const id = this.allocId();
    const body = Buffer.concat([Buffer.from([id >> 8, id & 0xff]), utf8Field(filter), Buffer.from([qos])]);
    this.socket.write(Buffer.concat([Buffer.from([0x82]), remainingLength(body.length), body]));
    return new Promise((resolve) => {
      this.subackWaiter = resolve;
    });
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end(Buffer.from([0xe0, 0x00]));
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
  }

  private onData(d: Buffer): void {
    // PUBACKs for a chunk of received PUBLISHes go out in one write.
    this.socket.cork();
    try {
      this.parse(d);
    } finally {
      this.socket.uncork();
    }
  }

  private parse(d: Buffer): void {
    let b = this.buf ? Buffer.concat([this.buf, d]) : d;
    let o = 0;
    for (;;) {
      if (b.length - o < 2) break;
      const type = (b[o] as number) >> 4;
      const flags = (b[o] as number) & 0x0f;
      let mult = 1;
      let len = 0;
      let i = o + 1;
      let complete = false;
      while (i < b.length && i < o + 5) {
        const byte = b[i++] as number;
        len += (byte & 0x7f) * mult;
        mult *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || b.length - i < len) break;
      const start = i;
      const end = i + len;
      switch (type) {
        case 2: // CONNACK: return code in the 2nd byte (3.2.2.3)
          if (b[start + 1] === 0) {
            this.connected = true;
            this.connackWaiter?.resolve();
          } else this.connackWaiter?.reject(new Error(`CONNACK return code ${b[start + 1]}`));
          this.connackWaiter = null;
          break;
        case 4: // PUBACK
          this.ev.onPuback?.(b.readUInt16BE(start));
          break;
        case 3: {
          // PUBLISH to a subscriber
          const qos = (flags >> 1) & 3;
          const tlen = b.readUInt16BE(start);
          const topic = b.toString('utf8', start + 2, start + 2 + tlen);
          let p = start + 2 + tlen;
          if (qos > 0) {
            const id = b.readUInt16BE(p);
            p += 2;
            this.socket.write(Buffer.from([0x40, 0x02, id >> 8, id & 0xff]));
          }
          this.ev.onPublish?.(topic, b.subarray(p, end), qos);
          break;
        }
        case 9: // SUBACK
          this.subackWaiter?.();
          this.subackWaiter = null;
          break;
        default:
          break;
      }
      o = end;
    }
    this.buf = o < b.length ? Buffer.from(b.subarray(o)) : null;
  }
}
