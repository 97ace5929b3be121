/**
 * QoS 2 telemetry is stored once (MQTT-4.3.3, "exactly once delivery").
 *
 * A sender that has not seen the PUBREC resends the PUBLISH with the same packet id and DUP set:
 * when it reconnects with CleanSession=0 (MQTT-4.4.0-1), and some clients also on a timeout. Until
 * the PUBREL the receiver must treat it as the same message and not deliver it again
 * (MQTT-4.3.3-2, method B). aedes does that for its subscribers, but it runs the authorizePublish
 * hook, where the gateway validates and stores the reading, before it looks the packet id up
 * (lib/handlers/publish.js); so the gateway answers a resend itself:
 * - the id is in aedes' incoming store (the PUBREC went out, or was about to, and the PUBREL has not
 *   come): a duplicate. The hook allows it without storing, and aedes answers with PUBREC only;
 * - the first copy is still being stored (both arrived before it was committed): the resend waits
 *   for that outcome and gets the same one, so it is never acknowledged for a reading that did not
 *   become durable.
 * After the PUBREL the id is free (aedes deletes it from its store): the next PUBLISH with it is a
 * new message. A CleanSession=1 connect discards the session and its ids (MQTT-3.1.2-6).
 */
import type { Client, PublishPacket } from 'aedes';

export type Done = (error?: Error | null) => void;

/** The part of aedes' persistence this needs: does the client's incoming store hold this id? */
export interface IncomingStore {
  incomingGetPacket(client: Client, packet: { messageId?: number }): Promise<unknown>;
}

interface InProgress {
  waiters: Done[];
  /** Set once the first copy's outcome is known; the entry stays one turn for resends right behind it. */
  outcome?: Error | null;
}

export class ExactlyOnce {
  private readonly byClient = new WeakMap<Client, Map<number, InProgress>>();

  /** `onDuplicate` is called for every resend answered without storing (for /metrics). */
  constructor(
    private readonly store: () => IncomingStore | undefined,
    private readonly onDuplicate: () => void,
  ) {}

  /**
   * A QoS 2 PUBLISH from a client: `accept(done)` validates and stores it unless it is a resend of a
   * message the gateway has already taken; `done` is aedes' authorizePublish callback.
   */
  admit(client: Client, packet: PublishPacket, accept: (done: Done) => void, done: Done): void {
    const id = packet.messageId;
    if (packet.qos !== 2 || id === undefined) return accept(done);
    let mine = this.byClient.get(client);
    if (!mine) {
      mine = new Map();
      this.byClient.set(client, mine);
    }
    const running = mine.get(id);
    if (running) {
      this.onDuplicate();
      if (running.outcome !== undefined) done(running.outcome);
      else running.waiters.push(done);
      return;
    }
    const entry: InProgress = { waiters: [] };
    mine.set(id, entry);
    const finish = (err: Error | null | undefined, duplicate: boolean): void => {
      if (duplicate) this.onDuplicate();
      entry.outcome = err ?? null;
      done(err);
      for (const w of entry.waiters.splice(0)) w(err);
      // aedes stores the id in its (in-memory) incoming store right after this callback, in promise
      // callbacks; the entry answers resends until then.
      setImmediate(() => {
        if (mine.get(id) === entry) mine.delete(id);
      });
    };
    const incoming = this.store();
    if (!incoming) return accept((err) => finish(err, false));
    incoming.incomingGetPacket(client, packet).then(
      () => finish(null, true),
      () => accept((err) => finish(err, false)),
    );
  }
}
