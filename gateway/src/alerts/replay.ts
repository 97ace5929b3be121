/**
 * The last few alert transitions, kept so an SSE client that reconnects misses nothing.
 *
 * A reconnecting EventSource sends the id of the last event it received in `Last-Event-ID` (WHATWG
 * HTML, "Server-sent events", 9.2.4 and 9.2.6). Transition ids (`seq`) increase by one per transition
 * and start, in each process, at its start time in microseconds, so an id from before a restart is
 * below this process's first one. `since(id)` answers with the transitions after `id` when the log
 * holds all of them, and with undefined when some may be missing (older than the log, from before this
 * process started, or an id this process never sent): the client must then re-read `GET /api/v1/alerts`.
 *
 * Each entry holds the transition as it was serialised at the time: the alert object itself changes
 * as later transitions update it.
 */
import type { AlertTransition } from './types.js';

export interface LoggedTransition {
  seq: number;
  event: AlertTransition['event'];
  machine: string;
  kind: string;
  /** JSON of the whole transition, as sent then. */
  data: string;
}

/** The first transition id of a process started now: its start time in microseconds (below 2^53 until 2255). */
export function firstSeqAt(nowMs: number): number {
  return Math.trunc(nowMs) * 1000;
}

export class TransitionLog {
  private readonly ring: LoggedTransition[] = [];
  private start = 0;
  /** Seq just before the oldest transition the log still holds (every later one is in it). */
  private floor: number;
  private last: number;

  /** `capacity` 0 keeps none: a reconnect after any new transition is told to re-read. */
  constructor(
    private readonly capacity: number,
    /** Ids of this process are above this (`firstSeqAt` of its start). */
    firstSeq: number,
  ) {
    this.floor = firstSeq;
    this.last = firstSeq;
  }

  /** The id of the newest transition (this process's first id minus one when there was none). */
  get newest(): number {
    return this.last;
  }

  push(t: AlertTransition): void {
    this.last = t.seq;
    if (this.capacity === 0) {
      this.floor = t.seq;
      return;
    }
    const entry: LoggedTransition = { seq: t.seq, event: t.event, machine: t.alert.machine, kind: t.alert.kind, data: JSON.stringify(t) };
    if (this.ring.length < this.capacity) {
      this.ring.push(entry);
      return;
    }
    this.floor = (this.ring[this.start] as LoggedTransition).seq;
    this.ring[this.start] = entry;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Transitions after `lastId`, oldest first; undefined when the log cannot say all of them. */
  since(lastId: number): LoggedTransition[] | undefined {
    if (!Number.isSafeInteger(lastId) || lastId < this.floor || lastId > this.last) return undefined;
    const out: LoggedTransition[] = [];
    for (let i = 0; i < this.ring.length; i++) {
      const e = this.ring[(this.start + i) % this.ring.length] as LoggedTransition;
      if (e.seq > lastId) out.push(e);
    }
    return out;
  }
}
