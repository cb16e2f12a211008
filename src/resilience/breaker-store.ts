import type Database from 'better-sqlite3';
import { type Db, migrate } from '../db/open.ts';

type Statement<P extends unknown[] | object, R = unknown> = Database.Statement<P, R>;

export type BreakerState = 'closed' | 'open' | 'half_open' | 'isolated';

/** One breaker as stored in state.db; every process on the data directory reads and obeys the same row. */
export interface BreakerRow {
  key: string;
  state: BreakerState;
  opened_at: number | null;
  /** open: when the break ends and a probe may start. */
  retry_at: number | null;
  /** Opens since the breaker was last closed; the break grows with it. */
  consecutive_opens: number;
  /** half_open: who holds the probe lease and until when (a crashed prober loses it at expiry). */
  probe_owner: string | null;
  probe_until: number | null;
  /** Why it is open or isolated. */
  reason: string | null;
  last_error_kind: string | null;
  last_error_message: string | null;
  last_error_at: number | null;
  updated_at: number;
}

export interface TransitionRow {
  id: number;
  key: string;
  at: number;
  from_state: BreakerState;
  to_state: BreakerState;
  cause: string;
}

/** History is for people reading `breaker history`, not an audit log: keep the last few hundred. */
export const keptTransitions = 500;

const migrations = [
  `CREATE TABLE breakers (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open', 'isolated')),
    opened_at INTEGER,
    retry_at INTEGER,
    consecutive_opens INTEGER NOT NULL DEFAULT 0,
    probe_owner TEXT,
    probe_until INTEGER,
    reason TEXT,
    last_error_kind TEXT,
    last_error_message TEXT,
    last_error_at INTEGER,
    updated_at INTEGER NOT NULL
  ) STRICT;
  -- The sliding window: a fixed ring of time buckets per key, so recording a call is one upsert on a
  -- row that already exists and the table never grows.
  CREATE TABLE breaker_buckets (
    key TEXT NOT NULL,
    slot INTEGER NOT NULL,
    start INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    PRIMARY KEY (key, slot)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE breaker_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    cause TEXT NOT NULL
  ) STRICT;`,
];

export interface WindowCounts {
  calls: number;
  failures: number;
}

/** Prepared statements for one connection, created once and shared by every breaker on it. */
export class BreakerStore {
  readonly db: Db;
  readonly #ensure: Statement<[string, number]>;
  readonly #read: Statement<[string], BreakerRow>;
  readonly #write: Statement<[BreakerRow]>;
  readonly #count: Statement<[{ key: string; slot: number; start: number; calls: number; failures: number }]>;
  readonly #noteError: Statement<[string, string, number, string]>;
  readonly #window: Statement<[string, number], WindowCounts>;
  readonly #resetWindow: Statement<[string]>;
  readonly #addTransition: Statement<[string, number, string, string, string]>;
  readonly #trim: Statement<[number]>;
  readonly #list: Statement<[], BreakerRow & { last_bucket: number | null }>;
  readonly #history: Statement<[number], TransitionRow>;
  readonly #transaction: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(db: Db) {
    migrate(db, 'breaker', migrations);
    this.db = db;
    this.#ensure = db.prepare(
      "INSERT INTO breakers (key, state, updated_at) VALUES (?, 'closed', ?) ON CONFLICT(key) DO NOTHING",
    );
    this.#read = db.prepare('SELECT * FROM breakers WHERE key = ?');
    this.#write = db.prepare(
      `UPDATE breakers SET state = @state, opened_at = @opened_at, retry_at = @retry_at,
         consecutive_opens = @consecutive_opens, probe_owner = @probe_owner, probe_until = @probe_until,
         reason = @reason, last_error_kind = @last_error_kind, last_error_message = @last_error_message,
         last_error_at = @last_error_at, updated_at = @updated_at
       WHERE key = @key`,
    );
    // Counts only while closed: calls still in flight when the breaker opened say nothing about the
    // provider's health after the break. A bucket whose slot is reused for a newer period starts over.
    this.#count = db.prepare(
      `INSERT INTO breaker_buckets (key, slot, start, calls, failures)
       SELECT @key, @slot, @start, @calls, @failures
       WHERE EXISTS (SELECT 1 FROM breakers WHERE key = @key AND state = 'closed')
       ON CONFLICT (key, slot) DO UPDATE SET
         calls = CASE WHEN start = excluded.start THEN calls + excluded.calls ELSE excluded.calls END,
         failures = CASE WHEN start = excluded.start THEN failures + excluded.failures ELSE excluded.failures END,
         start = excluded.start`,
    );
    this.#noteError = db.prepare(
      'UPDATE breakers SET last_error_kind = ?, last_error_message = ?, last_error_at = ? WHERE key = ?',
    );
    this.#window = db.prepare(
      `SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(failures), 0) AS failures
       FROM breaker_buckets WHERE key = ? AND start > ?`,
    );
    this.#resetWindow = db.prepare('DELETE FROM breaker_buckets WHERE key = ?');
    this.#addTransition = db.prepare(
      'INSERT INTO breaker_transitions (key, at, from_state, to_state, cause) VALUES (?, ?, ?, ?, ?)',
    );
    this.#trim = db.prepare(
      'DELETE FROM breaker_transitions WHERE id <= (SELECT max(id) FROM breaker_transitions) - ?',
    );
    this.#list = db.prepare(
      `SELECT b.*, (SELECT max(start) FROM breaker_buckets WHERE key = b.key) AS last_bucket FROM breakers b`,
    );
    this.#history = db.prepare('SELECT * FROM breaker_transitions ORDER BY id DESC LIMIT ?');
    this.#transaction = db.transaction((fn: () => unknown) => fn());
  }

  ensure(key: string, nowMs: number): void {
    this.#ensure.run(key, nowMs);
  }

  read(key: string): BreakerRow | undefined {
    return this.#read.get(key);
  }

  write(row: BreakerRow): void {
    this.#write.run(row);
  }

  /** Adds calls (and failures among them) to a bucket; false when the breaker is not closed (nothing counted). */
  count(key: string, slot: number, start: number, calls: number, failures: number): boolean {
    return this.#count.run({ key, slot, start, calls, failures }).changes > 0;
  }

  noteError(key: string, kind: string, message: string, atMs: number): void {
    this.#noteError.run(kind, message, atMs, key);
  }

  /** Calls and failures in buckets that started after `sinceMs`. */
  window(key: string, sinceMs: number): WindowCounts {
    return this.#window.get(key, sinceMs) ?? { calls: 0, failures: 0 };
  }

  resetWindow(key: string): void {
    this.#resetWindow.run(key);
  }

  addTransition(key: string, atMs: number, from: BreakerState, to: BreakerState, cause: string): void {
    this.#addTransition.run(key, atMs, from, to, cause);
    this.#trim.run(keptTransitions);
  }

  /** Every breaker with the time of its last activity (a transition, an error or a counted call). */
  list(): (BreakerRow & { last_active: number })[] {
    return this.#list.all().map(({ last_bucket, ...row }) => ({
      ...row,
      last_active: Math.max(row.updated_at, row.last_error_at ?? 0, last_bucket ?? 0),
    }));
  }

  history(limit: number): TransitionRow[] {
    return this.#history.all(limit);
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction: the read-check-write of a transition is atomic across processes. */
  immediate<T>(fn: () => T): T {
    return this.#transaction.immediate(fn) as T;
  }
}

const stores = new WeakMap<Db, BreakerStore>();

/** The store for a connection, migrating and preparing statements on first use. */
export function breakerStore(db: Db): BreakerStore {
  let store = stores.get(db);
  if (!store) {
    store = new BreakerStore(db);
    stores.set(db, store);
  }
  return store;
}
