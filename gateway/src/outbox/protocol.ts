/**
 * Messages between the outbox (main thread) and its SQLite writer (worker thread, worker.ts).
 * One MessageChannel carries them in order both ways; every request carries a `seq` and gets
 * exactly one reply with the same `seq`, so the main thread can match replies to requests.
 */

export interface WorkerInit {
  file: string;
  fsync: 'always' | 'os';
  maxBytes: number;
  fullPolicy: 'reject' | 'drop-oldest';
  quarantineKeep: number;
  journalSizeLimit: number;
}

/** One group commit: parallel arrays (cheap to clone: strings and numbers, no nested objects). */
export interface CommitRequest {
  t: 'commit';
  seq: number;
  now: number;
  machine: string[];
  ts: number[];
  data: string[];
  bytes: number[];
  groupBytes: number;
}

/** DELETE every row with id <= upTo (the sink confirmed them). upTo 0: a no-op round trip. */
export interface AckRequest {
  t: 'ack';
  seq: number;
  upTo: number;
}

export interface QuarantineRequest {
  t: 'quarantine';
  seq: number;
  ids: number[];
  error: string;
  now: number;
}

export interface CloseRequest {
  t: 'close';
  seq: number;
}

/** Test hook: make the worker fail hard (uncaught error), to prove the main thread notices. */
export interface CrashRequest {
  t: 'crash';
  seq: number;
}

export type Request = CommitRequest | AckRequest | QuarantineRequest | CloseRequest | CrashRequest;

/** Counters after the request, from the worker's view of the table (the authoritative one). */
export interface Counters {
  depth: number;
  bytes: number;
  quarantined: number;
}

export interface CommittedReply extends Counters {
  t: 'committed';
  seq: number;
  count: number;
  /** Id of the first row inserted; the others follow it one by one. -1 if they were not consecutive. */
  firstId: number;
  seconds: number;
  dropRows: number;
  /** Ids drop-oldest deleted, ascending (only when dropRows > 0). */
  dropIds?: Float64Array;
  /** Budget bytes of each of them, in step with dropIds. */
  dropBytes?: Float64Array;
}

export interface AckedReply extends Counters {
  t: 'acked';
  seq: number;
  /** Highest id it deleted (0: none). */
  maxId: number;
}

export interface QuarantinedReply extends Counters {
  t: 'quarantined';
  seq: number;
  moved: number;
  trimmed: number;
}

export interface ClosedReply {
  t: 'closed';
  seq: number;
}

/** A request failed; the table is unchanged by it (its transaction was rolled back). */
export interface FailedReply {
  t: 'failed';
  seq: number;
  message: string;
  /** SQLite error code (e.g. SQLITE_FULL) when there is one. */
  code?: string;
}

export type Reply = CommittedReply | AckedReply | QuarantinedReply | ClosedReply | FailedReply;
