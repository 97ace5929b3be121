import type { RejectReason } from '../contract/reading.js';

export interface RejectRecord {
  at: number;
  reason: RejectReason;
  detail: string;
  topic: string;
  clientId: string | null;
  /** First bytes of the payload, for diagnosis (never the whole payload). */
  payloadPreview: string;
  payloadBytes: number;
}

/** Ring buffer of the last N rejects (GET /api/v1/rejects). */
export class RejectLog {
  private readonly buf: RejectRecord[] = [];
  constructor(private readonly capacity: number) {}

  add(r: RejectRecord): void {
    if (this.capacity === 0) return;
    this.buf.push(r);
    if (this.buf.length > this.capacity) this.buf.shift();
  }

  /** Newest first. */
  list(limit = this.capacity): RejectRecord[] {
    return this.buf.slice(-limit).reverse();
  }
}
