/**
 * MQTT packet-size guard in front of aedes.
 *
 * aedes (1.x) and its parser (mqtt-packet 9) have no maximum packet size: the parser buffers a
 * whole packet, whatever its declared length (up to 256 MB), before anything can look at it. So a
 * 10 MB PUBLISH would be read into memory only to be refused by ingest afterwards.
 *
 * This guard reads only the fixed header of every packet (MQTT 3.1.1 section 2.2 / MQTT 5.0
 * section 2.1.1: one type byte, then the Remaining Length as a variable byte integer of 1-4 bytes)
 * as the bytes pass from the socket to aedes, and skips over the bodies by arithmetic. A packet
 * whose declared length is above the limit closes the connection before its body is buffered
 * (MQTT 5.0 section 3.2.2.3.6: a server that receives a packet larger than its Maximum Packet
 * Size closes the connection; 3.1.1 has no other way to refuse it).
 *
 * It wraps the stream's `read()` because that is how aedes consumes it (lib/client.js calls
 * `conn.read(null)` on 'readable'), so no extra stream or copy is put in the data path.
 */
import type { Duplex } from 'node:stream';

export interface OversizePacket {
  /** Declared Remaining Length of the packet, bytes. */
  declaredBytes: number;
  /** MQTT control packet type (3 = PUBLISH). */
  packetType: number;
  /** PUBLISH topic when it was already in the bytes read; otherwise undefined. */
  topic: string | undefined;
}

export class PacketTooLargeError extends Error {
  readonly code = 'SMARTOPS_MQTT_PACKET_TOO_LARGE';
  constructor(
    readonly declaredBytes: number,
    readonly limit: number,
  ) {
    super(`MQTT packet of ${declaredBytes} bytes exceeds the ${limit}-byte limit (ingest.maxPayloadBytes plus room for the topic): connection closed`);
  }
}

const State = {
  Header: 0,
  Length: 1,
  Body: 2,
  /** The stream is malformed or closed: pass bytes through and let the MQTT parser report it. */
  Off: 3,
} as const;
type State = (typeof State)[keyof typeof State];

/** Incremental scanner over MQTT framing; `push` returns an oversize packet when one is declared. */
export class FrameScanner {
  private state: State = State.Header;
  private type = 0;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private skip = 0;

  constructor(private readonly maxPacketBytes: number) {}

  push(buf: Buffer): OversizePacket | undefined {
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case State.Header:
          this.type = (buf[i] as number) >> 4;
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          this.state = State.Length;
          i++;
          break;
        case State.Length: {
          const b = buf[i] as number;
          i++;
          this.length += (b & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.lengthBytes++;
          if (b & 0x80) {
            // More than 4 length bytes is malformed (MQTT-2.2.3); the parser will refuse it.
            if (this.lengthBytes >= 4) this.state = State.Off;
            break;
          }
          if (this.length > this.maxPacketBytes) {
            this.state = State.Off;
            return { declaredBytes: this.length, packetType: this.type, topic: this.type === 3 ? readTopic(buf, i) : undefined };
          }
          this.skip = this.length;
          this.state = this.skip > 0 ? State.Body : State.Header;
          break;
        }
        case State.Body: {
          const n = Math.min(this.skip, buf.length - i);
          i += n;
          this.skip -= n;
          if (this.skip === 0) this.state = State.Header;
          break;
        }
        case State.Off:
          return undefined;
      }
    }
    return undefined;
  }
}

/** PUBLISH variable header starts with the topic as a UTF-8 string with a 2-byte length prefix. */
function readTopic(buf: Buffer, at: number): string | undefined {
  if (at + 2 > buf.length) return undefined;
  const len = buf.readUInt16BE(at);
  if (at + 2 + len > buf.length) return undefined;
  return buf.toString('utf8', at + 2, at + 2 + Math.min(len, 256));
}

/**
 * Install the guard on a connection before it is handed to aedes. `onOversize` is called once,
 * then the connection is destroyed and the offending bytes never reach the parser.
 */
export function guardPacketSize(stream: Duplex, maxPacketBytes: number, onOversize: (p: OversizePacket) => void): void {
  const scanner = new FrameScanner(maxPacketBytes);
  const read = stream.read.bind(stream);
  let tripped = false;
  stream.read = (size?: number): unknown => {
    if (tripped) return null;
    const chunk: unknown = read(size);
    if (Buffer.isBuffer(chunk)) {
      const over = scanner.push(chunk);
      if (over) {
        tripped = true;
        try {
          onOversize(over);
        } finally {
          stream.destroy(new PacketTooLargeError(over.declaredBytes, maxPacketBytes));
        }
        return null;
      }
    }
    return chunk;
  };
}
