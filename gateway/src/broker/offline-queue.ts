/**
 * A bound on the QoS 1/2 messages queued for a persistent session (CleanSession=0) whose client is
 * offline.
 *
 * MQTT 3.1.1 asks the server to keep, for such a session, the QoS 1 and 2 messages that match its
 * subscriptions while it is disconnected (MQTT-3.1.2-5) and lets it limit them ("the Server MAY
 * ... as part of its policy" of session state, section 3.1.2.4). aedes' in-memory persistence keeps
 * them all: an HMI or a historian that subscribed to `machines/+/telemetry` with CleanSession=0 and
 * then went away would grow the gateway's memory with every reading (about 0.3 KB each, measured)
 * until it ran out. Like Mosquitto's `max_queued_messages` (default 1000), a session's queue holds
 * at most `limit` messages while its client is offline; newer ones are not queued for it, and each
 * is counted and logged. The queue is delivered when the client comes back, as before.
 *
 * aedes queues every QoS 1/2 message for every matching persistent session (online or not) in
 * `outgoingEnqueueCombi` and removes it on PUBACK/PUBCOMP (or when a clean session discards it) in
 * `outgoingClearMessageId`; so a count per client id kept beside those two calls is the queue's
 * length. Only offline clients are limited: an online one's messages are in flight, bounded by the
 * slow-consumer limit (mqtt.maxQueuedBytesPerClient).
 */

/** The part of aedes' persistence wrapped here. */
export interface OutgoingQueues {
  outgoingEnqueue(sub: { clientId: string }, packet: unknown): Promise<void>;
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: unknown): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: unknown): Promise<unknown>;
}

export interface OfflineQueueOptions {
  /** Most messages queued for one offline persistent session. */
  limit: number;
  /** Whether a client with this id is connected now. */
  online(clientId: string): boolean;
  /** A message that was not queued for an offline client because its queue is full. */
  onDrop(clientId: string): void;
}

export class OfflineQueueBound {
  private readonly counts = new Map<string, number>();

  constructor(
    p: OutgoingQueues,
    private readonly opts: OfflineQueueOptions,
  ) {
    const enqueue = p.outgoingEnqueue.bind(p);
    const combi = p.outgoingEnqueueCombi.bind(p);
    const clear = p.outgoingClearMessageId.bind(p);
    p.outgoingEnqueue = (sub, packet) => {
      this.add(sub.clientId);
      return enqueue(sub, packet);
    };
    p.outgoingEnqueueCombi = (subs, packet) => {
      let kept = subs;
      for (let i = 0; i < subs.length; i++) {
        const id = (subs[i] as { clientId: string }).clientId;
        if ((this.counts.get(id) ?? 0) >= this.opts.limit && !this.opts.online(id)) {
          // Copy on the first drop only: most messages drop none.
          if (kept === subs) kept = subs.slice(0, i);
          this.opts.onDrop(id);
          continue;
        }
        this.add(id);
        if (kept !== subs) kept.push(subs[i] as { clientId: string });
      }
      return combi(kept, packet);
    };
    p.outgoingClearMessageId = (client, packet) =>
      clear(client, packet).then((removed) => {
        if (removed) this.remove(client.id);
        return removed;
      });
  }

  /** Messages queued for a client now (offline backlog plus, when online, those in flight). */
  queued(clientId: string): number {
    return this.counts.get(clientId) ?? 0;
  }

  /** Messages queued for all persistent sessions. */
  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  private add(id: string): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  private remove(id: string): void {
    const n = (this.counts.get(id) ?? 0) - 1;
    if (n > 0) this.counts.set(id, n);
    else this.counts.delete(id);
  }
}
