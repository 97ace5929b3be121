/**
 * Ingest back-pressure: a bound on the readings validated but not yet durably committed.
 *
 * Without it, under overload one event-loop turn reads every readable publisher socket (aedes reads
 * a client's whole socket buffer at once), so turns and group commits grow with the load, and the
 * forwarder, which needs a few turns per sink write, starves: the stored rate collapses while the
 * outbox grows. With it, once `maxPendingReadings` wait for the commit, further messages are held
 * here (FIFO, so order per publisher is kept) and released after the commit. aedes reads the next
 * packets of a client only when every packet of its previous read has been called back
 * (lib/client.js nextBatch), so a held message stops reading from that client's socket: TCP pushes
 * back on the publisher, nothing is refused or dropped, at QoS 0 and QoS 1 alike.
 *
 * Bounded: each connected client has at most one socket read (<= its stream's highWaterMark of
 * packets) waiting here. Observable: smartops_ingest_backpressure_* in /metrics, and a
 * rate-limited log line while publishers are held.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { RateLimitedLog } from '../obs/logger.js';

export interface PendingProbe {
  /** Readings handed to the outbox that its next group commit will store. */
  pendingReadings(): number;
}

export interface IngestGateOptions {
  maxPendingReadings: number;
}

type Task = () => void;

export class IngestGate {
  private queue: (Task | undefined)[] = [];
  private head = 0;
  private scheduled = false;
  /** When the current hold began (ms), and up to when its duration was counted. */
  private heldSince: number | null = null;
  private countedUpTo = 0;
  private readonly heldSeconds: Counter;
  private readonly heldMessages: Counter;
  private readonly rlog: RateLimitedLog;

  constructor(
    private readonly opts: IngestGateOptions,
    private readonly probe: PendingProbe,
    registry: Registry,
    logger: Logger,
  ) {
    this.rlog = new RateLimitedLog(logger, 10_000);
    const self = this;
    this.heldSeconds = new Counter({
      name: 'smartops_ingest_backpressure_seconds_total',
      help: 'Time during which incoming messages were held because ingest.maxPendingReadings readings were waiting for the durable commit (reads from those publishers stop meanwhile)',
      registers: [registry],
      collect() {
        self.countHeldTime(Date.now());
      },
    });
    this.heldMessages = new Counter({
      name: 'smartops_ingest_backpressure_held_messages_total',
      help: 'Messages held by ingest back-pressure before validation (none is refused: they are processed in order once the commit queue has room)',
      registers: [registry],
    });
    new Gauge({
      name: 'smartops_ingest_backpressure_waiting_messages',
      help: 'Messages held by ingest back-pressure right now',
      registers: [registry],
      collect() {
        this.set(self.waiting());
      },
    });
  }

  /** Messages held right now. */
  waiting(): number {
    return this.queue.length - this.head;
  }

  private open(): boolean {
    return this.probe.pendingReadings() < this.opts.maxPendingReadings;
  }

  /** Whether `run` would run a task at once (room in the commit queue and nothing held). */
  admitsNow(): boolean {
    return this.head === this.queue.length && this.open();
  }

  /** Run `task` now when the commit queue has room and nothing is held; else hold it (FIFO). */
  run(task: Task): void {
    if (this.admitsNow()) {
      task();
      return;
    }
    this.queue.push(task);
    this.heldMessages.inc();
    if (this.heldSince === null) {
      const now = Date.now();
      this.heldSince = now;
      this.countedUpTo = now;
      this.rlog.warn(
        'held',
        { pendingReadings: this.probe.pendingReadings(), maxPendingReadings: this.opts.maxPendingReadings },
        'ingest back-pressure: publishers are read more slowly until the outbox commit catches up (nothing is dropped)',
      );
    }
  }

  /** The outbox finished a commit: release held messages (after pending I/O callbacks, e.g. the forwarder's). */
  poke(): void {
    if (this.scheduled || this.head === this.queue.length) return;
    this.scheduled = true;
    setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    while (this.head < this.queue.length && this.open()) {
      const task = this.queue[this.head] as Task;
      this.queue[this.head++] = undefined;
      try {
        task();
      } catch (e) {
        // Tasks report their own failures; one that throws must not strand the ones behind it.
        this.rlog.warn('task', { error: (e as Error).message }, 'held message failed');
      }
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      if (this.heldSince !== null) {
        this.countHeldTime(Date.now());
        this.heldSince = null;
      }
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      // Release the slots already run so a long hold does not keep them.
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  };

  private countHeldTime(now: number): void {
    if (this.heldSince === null) return;
    this.heldSeconds.inc((now - this.countedUpTo) / 1000);
    this.countedUpTo = now;
  }
}
