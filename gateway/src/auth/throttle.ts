/**
 * Failed-login throttle per client address. Each MQTT password check costs a scrypt derivation
 * (about 16 MiB and tens of ms of CPU on the libuv pool), so unbounded guessing would be both a
 * brute-force channel and a way to load a 2-core gateway. After `maxFailures` failed logins from
 * one address within `windowMs`, further attempts from it are refused without a password check
 * until the window ends. A success does not reset the count: a device with valid credentials
 * cannot use them to keep guessing another user's password.
 */
export interface ThrottleOptions {
  maxFailures: number;
  windowMs: number;
  /** Bounded memory: at most this many addresses are tracked (the oldest are forgotten first). */
  maxAddresses: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 10, windowMs: 60_000, maxAddresses: 10_000 };

export class LoginThrottle {
  private readonly byAddress = new Map<string, { failures: number; since: number }>();

  constructor(private readonly opts: ThrottleOptions = DEFAULT_THROTTLE) {}

  /** True when this address has used up its failed attempts for the current window. */
  blocked(address: string, now = Date.now()): boolean {
    const e = this.byAddress.get(address);
    if (!e) return false;
    if (now - e.since >= this.opts.windowMs) {
      this.byAddress.delete(address);
      return false;
    }
    return e.failures >= this.opts.maxFailures;
  }

  failed(address: string, now = Date.now()): void {
    const e = this.byAddress.get(address);
    if (e && now - e.since < this.opts.windowMs) {
      e.failures++;
      return;
    }
    this.byAddress.delete(address);
    if (this.byAddress.size >= this.opts.maxAddresses) {
      const oldest = this.byAddress.keys().next();
      if (!oldest.done) this.byAddress.delete(oldest.value);
    }
    this.byAddress.set(address, { failures: 1, since: now });
  }

  get tracked(): number {
    return this.byAddress.size;
  }
}
