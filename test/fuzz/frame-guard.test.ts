/**
 * The MQTT packet-size guard follows MQTT framing across arbitrary TCP chunking: it flags exactly
 * the first packet whose declared Remaining Length is over the limit, wherever the chunks split.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameScanner } from '../../gateway/src/broker/frame-guard.js';
import { mqttPackets } from '../security/helpers.js';

const LIMIT = 1000;

function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

describe('FrameScanner', () => {
  it('flags the first oversized packet, and only it, under any chunking', () => {
    const packetArb = fc.oneof(
      fc.record({ topic: fc.stringMatching(/^[a-z/]{1,30}$/), size: fc.integer({ min: 0, max: 2 * LIMIT }) }).map(({ topic, size }) => ({
        bytes: mqttPackets.publish(topic, Buffer.alloc(size, 0x41)),
        declared: Buffer.byteLength(topic) + 2 + size,
        topic,
      })),
      fc.constant({ bytes: Buffer.from([0xc0, 0x00]), declared: 0, topic: undefined }), // PINGREQ
      fc.integer({ min: 1, max: 65535 }).map((id) => ({ bytes: mqttPackets.subscribe(id, 'a/#'), declared: 8, topic: undefined })),
    );
    fc.assert(
      fc.property(fc.array(packetArb, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (packets, cuts) => {
        const stream = Buffer.concat(packets.map((p) => p.bytes));
        const firstOver = packets.find((p) => p.declared > LIMIT);
        const scanner = new FrameScanner(LIMIT);
        let flagged: ReturnType<FrameScanner['push']>;
        for (const chunk of split(stream, cuts)) {
          flagged = scanner.push(chunk);
          if (flagged) break;
        }
        if (!firstOver) {
          expect(flagged).toBeUndefined();
          return;
        }
        expect(flagged?.declaredBytes).toBe(firstOver.declared);
        // The topic is reported when the chunk that completed the header also held it.
        if (flagged?.topic !== undefined) expect(flagged.topic).toBe(firstOver.topic);
      }),
      { numRuns: 3000 },
    );
  });

  it('handles every Remaining Length encoding size (1 to 4 bytes) and stops on a malformed 5th byte', () => {
    for (const n of [127, 128, 16383, 16384, 2097151, 2097152, 268435455]) {
      // publishHeader declares topic (2 + 1 bytes) + payload = n bytes of Remaining Length.
      const header = mqttPackets.publishHeader('t', n - 3);
      expect(new FrameScanner(n - 1).push(header)).toMatchObject({ declaredBytes: n, packetType: 3, topic: 't' });
      expect(new FrameScanner(n).push(header)).toBeUndefined();
    }
    const bad = new FrameScanner(10);
    expect(bad.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00]))).toBeUndefined();
  });
});
