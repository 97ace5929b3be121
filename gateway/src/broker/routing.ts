/**
 * Skipping aedes' routing work for publishes that no subscription can receive.
 *
 * For every PUBLISH, after our `authorizePublish` hook (and, for QoS 1, after the PUBACK), aedes
 * runs `broker.publish` (aedes.js): a new aedes-packet, then for QoS > 0 the persistence's
 * `subscriptionsByTopic` (a QlobberSub match) and `outgoingEnqueueCombi` (two promises and
 * closures, to queue the message for persistent sessions), then `mq.emit` (another qlobber match,
 * plus a fastparallel holder that is never pooled again when nothing matched), then the
 * `published` hook and the 'publish' event. Telemetry topics usually have no subscriber at all, so
 * all of that finds nothing (bench/README "Broker routing").
 *
 * `GatewayAedes` answers "can any subscription match this topic?" from an index of every topic
 * filter that was ever added to aedes' router (`subscribe`, the public method every client
 * subscription goes through, lib/handlers/subscribe.js) or to its persistence (`addSubscriptions`:
 * the only way into the persistence's trie of persistent-session subscriptions that
 * `subscriptionsByTopic` matches; aedes stores a SUBSCRIBE packet's whole filter list there, also
 * filters it refused or will reject). Filters are never removed from the index (an unsubscribe or
 * a cleaned session leaves them), so it is a superset of what aedes can match, and the matcher is
 * conservative (`#` anywhere matches the rest, `+` matches any level including an empty one). Only
 * when no recorded filter can match does a publish skip straight to what aedes would do after
 * routing (the `published` hook, then the 'publish' event); everything else takes aedes' own path
 * unchanged: retained messages, `$` topics ($SYS), the gateway's own publishes (alerts: no
 * client), and any topic a filter may match, so online and offline (clean=false) subscribers get
 * exactly what they got before.
 *
 * Bounded: past MAX_EXACT_FILTERS distinct filters without wildcards or MAX_WILDCARD_FILTERS with
 * them, the index switches itself off for the life of the broker (every publish takes aedes' path
 * again) and says so once in the log and in /metrics.
 */
import { Aedes, type AedesOptions, type AedesPublishPacket, type Client, type PublishPacket } from 'aedes';

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;

/** Distinct wildcard-free filters kept (a Set lookup per publish, whatever the count). */
export const MAX_EXACT_FILTERS = 50_000;
/** Distinct filters with `+` or `#` kept (each is tried against a topic until one may match). */
export const MAX_WILDCARD_FILTERS = 64;

/**
 * May `filter` match `topic`? Never false where MQTT (MQTT-4.7) or aedes' routers (qlobber, with
 * or without empty levels) would match; may be true where they would not (`#` before the last
 * level). Compares in place: no split, no allocation, as it runs for every publish.
 */
export function filterMayMatch(filter: string, topic: string): boolean {
  let f = 0; // start of the filter's current level
  let t = 0; // start of the topic's current level; -1 once the topic has no more levels
  for (;;) {
    let fe = filter.indexOf('/', f);
    if (fe < 0) fe = filter.length;
    const fLen = fe - f;
    // `#` matches what is left, also nothing ('a/#' matches 'a').
    if (fLen === 1 && filter.charCodeAt(f) === HASH) return true;
    if (t < 0) return false;
    let te = topic.indexOf('/', t);
    if (te < 0) te = topic.length;
    if (!(fLen === 1 && filter.charCodeAt(f) === PLUS)) {
      if (fLen !== te - t) return false;
      for (let i = 0; i < fLen; i++) if (filter.charCodeAt(f + i) !== topic.charCodeAt(t + i)) return false;
    }
    if (fe === filter.length) return te === topic.length;
    f = fe + 1;
    t = te === topic.length ? -1 : te + 1;
  }
}

function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

function levelCount(topic: string): number {
  let n = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === SLASH) n++;
  return n;
}

export interface IndexLimits {
  maxExactFilters: number;
  maxWildcardFilters: number;
}

/** Every topic filter ever given to the broker's router or persistence; see the file comment. */
export class SubscriptionIndex {
  private exact = new Set<string>();
  private wildcard: string[] = [];
  private on = true;
  /** Why the index switched itself off, once it has. */
  offReason: string | undefined;

  constructor(
    private readonly limits: IndexLimits = { maxExactFilters: MAX_EXACT_FILTERS, maxWildcardFilters: MAX_WILDCARD_FILTERS },
    private readonly onOff: (reason: string) => void = () => undefined,
  ) {}

  get enabled(): boolean {
    return this.on;
  }

  get filters(): number {
    return this.exact.size + this.wildcard.length;
  }

  record(filter: unknown): void {
    if (!this.on) return;
    if (typeof filter !== 'string') return this.off('a subscription filter that is not a string');
    // A filter whose first level starts with '$' matches only '$' topics, which always take aedes' path.
    if (filter.charCodeAt(0) === DOLLAR) return;
    if (hasWildcard(filter)) {
      if (this.wildcard.includes(filter)) return;
      if (this.wildcard.length >= this.limits.maxWildcardFilters) return this.off(`more than ${this.limits.maxWildcardFilters} distinct wildcard filters`);
      this.wildcard.push(filter);
    } else {
      if (this.exact.has(filter)) return;
      if (this.exact.size >= this.limits.maxExactFilters) return this.off(`more than ${this.limits.maxExactFilters} distinct filters`);
      this.exact.add(filter);
    }
  }

  /** True only when no subscription can match `topic` (so routing it would find nobody). */
  unrouted(topic: string): boolean {
    if (!this.on || topic.length === 0 || topic.charCodeAt(0) === DOLLAR) return false;
    if (this.exact.has(topic)) return false;
    const w = this.wildcard;
    for (let i = 0; i < w.length; i++) if (filterMayMatch(w[i] as string, topic)) return false;
    return true;
  }

  /** Route every publish from now on (for good). */
  switchOff(reason: string): void {
    if (this.on) this.off(reason);
  }

  private off(reason: string): void {
    this.on = false;
    this.offReason = reason;
    this.exact = new Set();
    this.wildcard = [];
    this.onOff(reason);
  }
}

type Done = (error?: Error) => void;
type SubscribeFn = Aedes['subscribe'];
interface PersistenceWithSubscriptions {
  addSubscriptions(client: unknown, subs: unknown, ...rest: unknown[]): Promise<unknown>;
}

export interface GatewayAedesOptions {
  limits?: IndexLimits;
  /**
   * Whether a filter of a SUBSCRIBE packet may be kept in the persistence for this client. aedes
   * hands the packet's whole filter list to the persistence once one filter is authorized, so a
   * filter the SUBACK refused would otherwise still queue messages for the session while it is
   * offline, and deliver them when it returns (test/security/mqtt-persistent-acl.test.ts).
   */
  mayStore?: (client: Client, filter: string) => boolean;
  /** Called once if the index switches itself off. */
  onIndexOff?: (reason: string) => void;
}

/**
 * aedes with the routing skip. Built as aedes' own `createBroker` does (`new`, then `listen()`),
 * with aedes' default in-memory persistence and router: with a persistence shared with another
 * process (or broker) the index could not know that store's subscriptions, so it would be wrong.
 */
export class GatewayAedes extends Aedes {
  readonly routing: SubscriptionIndex;
  /** Publishes that skipped routing (no subscription could match). A plain number: read at scrape time. */
  unroutedPublishes = 0;
  /** aedes' maxTopicLevels (clamped by aedes): a deeper topic takes aedes' path, which refuses it. */
  private readonly levelLimit: number;
  private readonly mayStore: ((client: Client, filter: string) => boolean) | undefined;

  constructor(opts: AedesOptions, extra: GatewayAedesOptions = {}) {
    if (opts.persistence !== undefined || opts.mq !== undefined) throw new Error("GatewayAedes needs aedes' own in-memory persistence and mq");
    super(opts);
    this.routing = new SubscriptionIndex(extra.limits, extra.onIndexOff);
    this.mayStore = extra.mayStore;
    const m = (this as unknown as { maxTopicLevels?: unknown }).maxTopicLevels;
    this.levelLimit = typeof m === 'number' ? m : 100;
  }

  static async start(opts: AedesOptions, extra: GatewayAedesOptions = {}): Promise<GatewayAedes> {
    const a = new GatewayAedes(opts, extra);
    await a.listen();
    a.indexPersistence();
    return a;
  }

  /** Record every filter stored in the persistence's trie, before it is stored (and keep out refused ones). */
  private indexPersistence(): void {
    const p = (this as unknown as { persistence?: Partial<PersistenceWithSubscriptions> }).persistence;
    const add = p?.addSubscriptions;
    if (!p || typeof add !== 'function') {
      this.routing.switchOff('the persistence has no addSubscriptions');
      return;
    }
    const routing = this.routing;
    const mayStore = this.mayStore;
    p.addSubscriptions = function addSubscriptionsIndexed(client, subs, ...rest: unknown[]) {
      let kept = subs;
      if (Array.isArray(subs)) {
        if (mayStore) kept = subs.filter((s: { topic?: unknown } | null) => typeof s?.topic !== 'string' || mayStore(client as Client, s.topic));
        for (const s of kept as ({ topic?: unknown } | null)[]) routing.record(s?.topic);
      } else routing.record(undefined);
      return add.call(p, client, kept, ...rest);
    };
  }

  override subscribe(topic: string, deliverfunc: Parameters<SubscribeFn>[1], callback: Parameters<SubscribeFn>[2]): void {
    this.routing.record(topic);
    super.subscribe(topic, deliverfunc, callback);
  }

  /**
   * aedes calls `publish(packet, client, done)` for what clients send (and wills); the public form
   * is `publish(packet, done)` (the gateway's own publishes). Only the former may skip routing.
   */
  override publish(packet: PublishPacket, clientOrDone?: Client | null | Done, maybeDone?: Done): void {
    const client = typeof clientOrDone === 'function' ? null : (clientOrDone ?? null);
    const done: Done = (typeof clientOrDone === 'function' ? clientOrDone : maybeDone) ?? noop;
    if (client !== null && packet.retain !== true && this.routing.unrouted(packet.topic) && levelCount(packet.topic) <= this.levelLimit) {
      this.unroutedPublishes++;
      // What aedes does once routing is done (aedes.js callPublished), in the same order.
      // (aedes' callbacks take null for "no error" as well.)
      this.published(packet as AedesPublishPacket, client, done as (error?: Error | null) => void);
      this.emit('publish', packet as AedesPublishPacket, client);
      return;
    }
    (super.publish as unknown as (p: PublishPacket, c: Client | null, d: Done) => void).call(this, packet, client, done);
  }
}

function noop(): void {}
