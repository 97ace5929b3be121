/**
 * SQLite implementation of AlertStore (better-sqlite3, WAL, synchronous=FULL: an acknowledged
 * or resolved alert is on disk before the HTTP call returns; alert writes are rare enough).
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Alert, AlertPage, AlertQuery, AlertState, AlertStore, ConditionKind, Contributor, Severity } from './types.js';
import { AlertError } from './types.js';

const SCHEMA_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS alerts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  machine TEXT NOT NULL,
  kind TEXT NOT NULL,
  severity TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  opened_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  score REAL,
  peak_score REAL,
  threshold REAL,
  peak_at INTEGER,
  contributors TEXT NOT NULL,
  update_count INTEGER NOT NULL,
  acknowledged_at INTEGER,
  acknowledged_by TEXT,
  ack_note TEXT,
  resolved_at INTEGER,
  resolved_by TEXT,
  resolve_note TEXT,
  resolution TEXT
);
-- The "one open alert per machine and kind" rule, enforced by the database itself.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts(machine, kind) WHERE state IN ('open', 'acknowledged');
CREATE INDEX IF NOT EXISTS alerts_started ON alerts(started_at, seq);
CREATE INDEX IF NOT EXISTS alerts_machine_started ON alerts(machine, started_at, seq);
CREATE INDEX IF NOT EXISTS alerts_episode ON alerts(machine, kind, started_at);
CREATE INDEX IF NOT EXISTS alerts_resolved ON alerts(resolved_at) WHERE state = 'resolved';
CREATE TABLE IF NOT EXISTS machines_seen (
  machine TEXT PRIMARY KEY,
  last_seen INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  seq: number;
  id: string;
  machine: string;
  kind: string;
  severity: string;
  state: string;
  message: string;
  started_at: number;
  opened_at: number;
  updated_at: number;
  score: number | null;
  peak_score: number | null;
  threshold: number | null;
  peak_at: number | null;
  contributors: string;
  update_count: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  ack_note: string | null;
  resolved_at: number | null;
  resolved_by: string | null;
  resolve_note: string | null;
  resolution: string | null;
}

const contributorsSchema = z.array(
  z.object({
    metric: z.string(),
    feature: z.string(),
    value: z.number(),
    baseline: z.number(),
    ratio: z.number(),
    text: z.string(),
  }),
);
const kindSchema = z.enum(['anomaly', 'limit', 'silence']);
const severitySchema = z.enum(['info', 'warning', 'critical']);
const stateSchema = z.enum(['open', 'acknowledged', 'resolved']);

function parseContributors(json: string): Contributor[] {
  try {
    const r = contributorsSchema.safeParse(JSON.parse(json));
    return r.success ? r.data : [];
  } catch {
    return [];
  }
}

// Rows are read back through zod: the file may have been edited or written by another version.
function fromRow(r: Row): Alert {
  const contributors = parseContributors(r.contributors);
  return {
    id: r.id,
    machine: r.machine,
    kind: kindSchema.parse(r.kind),
    severity: severitySchema.parse(r.severity),
    state: stateSchema.parse(r.state),
    message: r.message,
    startedAt: r.started_at,
    openedAt: r.opened_at,
    updatedAt: r.updated_at,
    score: r.score,
    peakScore: r.peak_score,
    threshold: r.threshold,
    peakAt: r.peak_at,
    contributors,
    contributorsText: contributors.map((c) => c.text).join('; '),
    updateCount: r.update_count,
    acknowledgedAt: r.acknowledged_at,
    acknowledgedBy: r.acknowledged_by,
    ackNote: r.ack_note,
    resolvedAt: r.resolved_at,
    resolvedBy: r.resolved_by,
    resolveNote: r.resolve_note,
    resolution: r.resolution === 'auto' || r.resolution === 'manual' ? r.resolution : null,
  };
}

function toParams(a: Alert): Record<string, string | number | null> {
  return {
    id: a.id,
    machine: a.machine,
    kind: a.kind,
    severity: a.severity,
    state: a.state,
    message: a.message,
    started_at: a.startedAt,
    opened_at: a.openedAt,
    updated_at: a.updatedAt,
    score: a.score,
    peak_score: a.peakScore,
    threshold: a.threshold,
    peak_at: a.peakAt,
    contributors: JSON.stringify(a.contributors),
    update_count: a.updateCount,
    acknowledged_at: a.acknowledgedAt,
    acknowledged_by: a.acknowledgedBy,
    ack_note: a.ackNote,
    resolved_at: a.resolvedAt,
    resolved_by: a.resolvedBy,
    resolve_note: a.resolveNote,
    resolution: a.resolution,
  };
}

function encodeCursor(startedAt: number, seq: number): string {
  return Buffer.from(`${startedAt}.${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { startedAt: number; seq: number } {
  const m = /^(-?\d{1,16})\.(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new AlertError('BAD_CURSOR', 'cursor: not a cursor returned by this API (pass `nextCursor` from the previous page unchanged)');
  return { startedAt: Number(m[1]), seq: Number(m[2]) };
}

const COLUMNS = [
  'id', 'machine', 'kind', 'severity', 'state', 'message', 'started_at', 'opened_at', 'updated_at', 'score',
  'peak_score', 'threshold', 'peak_at', 'contributors', 'update_count', 'acknowledged_at', 'acknowledged_by',
  'ack_note', 'resolved_at', 'resolved_by', 'resolve_note', 'resolution',
] as const;

export class SqliteAlertStore implements AlertStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new Error(`${file}: alert store schema version ${version} is newer than this gateway understands (${SCHEMA_VERSION}); upgrade the gateway or move the file away`);
    }
    this.db.exec(DDL);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const mutable = COLUMNS.filter((c) => c !== 'id' && c !== 'machine' && c !== 'kind');
    this.stmts = {
      insert: this.db.prepare(`INSERT INTO alerts (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`),
      update: this.db.prepare(`UPDATE alerts SET ${mutable.map((c) => `${c} = @${c}`).join(', ')} WHERE id = @id`),
      get: this.db.prepare<[string], Row>('SELECT * FROM alerts WHERE id = ?'),
      findActive: this.db.prepare<[string, string], Row>(
        "SELECT * FROM alerts WHERE machine = ? AND kind = ? AND state IN ('open', 'acknowledged')",
      ),
      listActive: this.db.prepare<[], Row>("SELECT * FROM alerts WHERE state IN ('open', 'acknowledged') ORDER BY started_at, seq"),
      episode: this.db.prepare<[string, string, number], { one: number }>(
        "SELECT 1 AS one FROM alerts WHERE machine = ? AND kind = ? AND started_at = ? AND state = 'resolved' LIMIT 1",
      ),
      countActive: this.db.prepare<[], { kind: string; severity: string; state: string; count: number }>(
        "SELECT kind, severity, state, COUNT(*) AS count FROM alerts WHERE state IN ('open', 'acknowledged') GROUP BY kind, severity, state",
      ),
      activeMachines: this.db.prepare<[], { machine: string }>("SELECT DISTINCT machine FROM alerts WHERE state IN ('open', 'acknowledged')"),
      prune: this.db.prepare<[number]>("DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?"),
      loadSeen: this.db.prepare<[], { machine: string; last_seen: number }>('SELECT machine, last_seen FROM machines_seen'),
      saveSeen: this.db.prepare<[string, number]>(
        'INSERT INTO machines_seen (machine, last_seen) VALUES (?, ?) ON CONFLICT(machine) DO UPDATE SET last_seen = excluded.last_seen',
      ),
      forgetSeen: this.db.prepare<[string]>('DELETE FROM machines_seen WHERE machine = ?'),
    };
  }

  insert(alert: Alert): void {
    try {
      this.stmts.insert.run(toParams(alert));
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new AlertError('ALERT_CONFLICT', `machine "${alert.machine}" already has an open ${alert.kind} alert`);
      }
      throw e;
    }
  }

  update(alert: Alert): void {
    const p = toParams(alert);
    delete p.machine;
    delete p.kind;
    const r = this.stmts.update.run(p);
    if (r.changes === 0) throw new AlertError('ALERT_NOT_FOUND', `alert "${alert.id}" does not exist`);
  }

  get(id: string): Alert | undefined {
    const r = this.stmts.get.get(id);
    return r ? fromRow(r) : undefined;
  }

  findActive(machine: string, kind: ConditionKind): Alert | undefined {
    const r = this.stmts.findActive.get(machine, kind);
    return r ? fromRow(r) : undefined;
  }

  listActive(): Alert[] {
    return this.stmts.listActive.all().map(fromRow);
  }

  hasResolvedEpisode(machine: string, kind: ConditionKind, startedAt: number): boolean {
    return this.stmts.episode.get(machine, kind, startedAt) !== undefined;
  }

  list(q: AlertQuery): AlertPage {
    const where: string[] = [];
    const params: Record<string, string | number> = {};
    if (q.machine !== undefined) {
      where.push('machine = @machine');
      params.machine = q.machine;
    }
    if (q.state === 'active') where.push("state IN ('open', 'acknowledged')");
    else if (q.state !== undefined) {
      where.push('state = @state');
      params.state = q.state;
    }
    if (q.kind !== undefined) {
      where.push('kind = @kind');
      params.kind = q.kind;
    }
    if (q.severity !== undefined) {
      where.push('severity = @severity');
      params.severity = q.severity;
    }
    if (q.from !== undefined) {
      where.push('started_at >= @from');
      params.from = q.from;
    }
    if (q.to !== undefined) {
      where.push('started_at < @to');
      params.to = q.to;
    }
    if (q.cursor !== undefined) {
      const c = decodeCursor(q.cursor);
      where.push('(started_at < @cStarted OR (started_at = @cStarted AND seq < @cSeq))');
      params.cStarted = c.startedAt;
      params.cSeq = c.seq;
    }
    const limit = Math.max(1, Math.min(500, Math.floor(q.limit)));
    params.limit = limit + 1;
    const sql = `SELECT * FROM alerts ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, seq DESC LIMIT @limit`;
    const rows = this.db.prepare<[Record<string, string | number>], Row>(sql).all(params);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    return { alerts: page.map(fromRow), nextCursor: more && last ? encodeCursor(last.started_at, last.seq) : null };
  }

  countActive(): Array<{ kind: ConditionKind; severity: Severity; state: AlertState; count: number }> {
    return this.stmts.countActive.all().map((r) => ({
      kind: kindSchema.parse(r.kind),
      severity: severitySchema.parse(r.severity),
      state: stateSchema.parse(r.state),
      count: r.count,
    }));
  }

  machinesWithActive(): string[] {
    return this.stmts.activeMachines.all().map((r) => r.machine);
  }

  pruneResolved(before: number): number {
    return this.stmts.prune.run(before).changes;
  }

  loadLastSeen(): Map<string, number> {
    return new Map(this.stmts.loadSeen.all().map((r) => [r.machine, r.last_seen]));
  }

  saveLastSeen(entries: Iterable<[string, number]>): void {
    const save = this.db.transaction((list: Array<[string, number]>) => {
      for (const [m, t] of list) this.stmts.saveSeen.run(m, t);
    });
    save([...entries]);
  }

  forgetLastSeen(machine: string): void {
    this.stmts.forgetSeen.run(machine);
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export function openAlertStore(file: string): SqliteAlertStore {
  return new SqliteAlertStore(file);
}
