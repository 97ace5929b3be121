/**
 * Machines seen by the gateway: first/last reading time, readings count, metric names, merged with
 * the optional configured registry (site/line/kind). Kept in memory, persisted to
 * `<dataDir>/machines.sqlite` every few seconds and at stop, so /api/v1/machines survives restarts.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { Reading } from '../contract/reading.js';

export interface MachineInfo {
  id: string;
  firstTs: number;
  lastTs: number;
  lastArrival: number;
  readings: number;
  metrics: string[];
  site?: string | undefined;
  line?: string | undefined;
  kind?: string | undefined;
  description?: string | undefined;
}

export interface RegistryEntry {
  site?: string | undefined;
  line?: string | undefined;
  kind?: string | undefined;
  description?: string | undefined;
}

interface State {
  firstTs: number;
  lastTs: number;
  lastArrival: number;
  readings: number;
  metrics: Set<string>;
  /** The machine's previous reading in arrival order (its ts and metrics), for the overwrite check. */
  prevTs: number;
  prev: Readonly<Record<string, number>> | null;
}

/**
 * True when `next` gives a metric of `prev` another value: the sinks keep one point per machine and
 * millisecond (InfluxDB's series + timestamp identity; the embedded store's merge), so the earlier
 * value is overwritten. Other metrics at the same time merge, and an identical resend changes nothing.
 */
function overwrites(prev: Readonly<Record<string, number>>, next: Readonly<Record<string, number>>): boolean {
  for (const k in next) if (Object.hasOwn(prev, k) && prev[k] !== next[k]) return true;
  return false;
}

/** Metric names kept per machine: a bound, so a misbehaving device cannot grow memory forever. */
const MAX_METRIC_NAMES = 1024;

export class MachineRegistry {
  private readonly state = new Map<string, State>();
  private readonly dirty = new Set<string>();
  private readonly db: Database.Database;
  private readonly timer: NodeJS.Timeout;

  constructor(
    dir: string,
    private readonly configured: Record<string, RegistryEntry>,
    flushIntervalMs = 2000,
  ) {
    this.db = new Database(join(dir, 'machines.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS machines (
      id TEXT PRIMARY KEY, first_ts INTEGER, last_ts INTEGER, last_arrival INTEGER, readings INTEGER, metrics TEXT)`);
    for (const r of this.db.prepare('SELECT * FROM machines').all() as {
      id: string;
      first_ts: number;
      last_ts: number;
      last_arrival: number;
      readings: number;
      metrics: string;
    }[]) {
      this.state.set(r.id, {
        firstTs: r.first_ts,
        lastTs: r.last_ts,
        lastArrival: r.last_arrival,
        readings: r.readings,
        metrics: new Set(JSON.parse(r.metrics) as string[]),
        prevTs: Number.NaN,
        prev: null,
      });
    }
    this.timer = setInterval(() => this.flush(), flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Account accepted readings. Returns how many of them overwrite a value of their machine's
   * previous reading (same timestamp, another value for a metric: see `overwrites`), for the
   * caller to count and log; a device that stamps several samples with one timestamp (a clock in
   * whole seconds, say) loses all but the last of them in storage.
   */
  record(readings: Reading[], arrival = Date.now()): number {
    // One message's readings share a machine (its topic): look the state up once per run of them.
    let id: string | undefined;
    let s: State | undefined;
    let overwritten = 0;
    for (const r of readings) {
      if (r.machine !== id || !s) {
        id = r.machine;
        s = this.state.get(id);
        if (!s) {
          s = { firstTs: r.ts, lastTs: r.ts, lastArrival: arrival, readings: 0, metrics: new Set(), prevTs: Number.NaN, prev: null };
          this.state.set(id, s);
        }
        s.lastArrival = arrival;
        this.dirty.add(id);
      }
      if (r.ts < s.firstTs) s.firstTs = r.ts;
      if (r.ts > s.lastTs) s.lastTs = r.ts;
      if (r.ts === s.prevTs && s.prev !== null && overwrites(s.prev, r.metrics)) overwritten++;
      s.prevTs = r.ts;
      s.prev = r.metrics;
      s.readings++;
      if (s.metrics.size < MAX_METRIC_NAMES) for (const m in r.metrics) s.metrics.add(m);
    }
    return overwritten;
  }

  /** Registry tags for a machine (added to every telemetry point). */
  tagsFor(machine: string): RegistryEntry | undefined {
    return this.configured[machine];
  }

  kindOf(machine: string): string | undefined {
    return this.configured[machine]?.kind;
  }

  get(id: string): MachineInfo | undefined {
    const s = this.state.get(id);
    if (!s) return undefined;
    const c = this.configured[id];
    return {
      id,
      firstTs: s.firstTs,
      lastTs: s.lastTs,
      lastArrival: s.lastArrival,
      readings: s.readings,
      metrics: [...s.metrics].sort(),
      site: c?.site,
      line: c?.line,
      kind: c?.kind,
      description: c?.description,
    };
  }

  list(): MachineInfo[] {
    return [...this.state.keys()].sort().map((id) => this.get(id) as MachineInfo);
  }

  ids(): string[] {
    return [...this.state.keys()];
  }

  flush(): void {
    if (this.dirty.size === 0 || !this.db.open) return;
    const up = this.db.prepare(
      `INSERT INTO machines (id, first_ts, last_ts, last_arrival, readings, metrics) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET first_ts = excluded.first_ts, last_ts = excluded.last_ts,
       last_arrival = excluded.last_arrival, readings = excluded.readings, metrics = excluded.metrics`,
    );
    this.db.transaction(() => {
      for (const id of this.dirty) {
        const s = this.state.get(id);
        if (s) up.run(id, s.firstTs, s.lastTs, s.lastArrival, s.readings, JSON.stringify([...s.metrics]));
      }
    })();
    this.dirty.clear();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
    this.db.close();
  }
}
