import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { Clock } from '../core/clock.ts';
import { type Db, migrate, openDatabase } from '../db/open.ts';
import { type BreakerState, windowBucket } from './breaker-machine.ts';
import {
  type SnapshotRow,
  type StateColumns,
  toColumns,
  toSnapshot,
  unstoredSnapshot,
} from './breaker-row.ts';
import {
  type BreakerAdmin,
  type BreakerHistoryEntry,
  type BreakerSnapshot,
  type BreakerStore,
  keptTransitions,
  type RecordResult,
  type Tally,
  type TransitChange,
  type TransitResult,
} from './breaker-store.ts';

type Statement<P extends unknown[] | object, R = unknown> = Database.Statement<P, R>;

/** Numbered once and for all: a state.db written by any release opens and keeps its breakers. */
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
  // The compare-and-set token of `transit`: existing rows start at 0, like a breaker never stored.
  'ALTER TABLE breakers ADD COLUMN version INTEGER NOT NULL DEFAULT 0;',
];

const snapshotSelect = `SELECT b.*,
    (SELECT coalesce(sum(calls), 0) FROM breaker_buckets WHERE key = b.key AND start > @since) AS window_calls,
    (SELECT coalesce(sum(failures), 0) FROM breaker_buckets WHERE key = b.key AND start > @since) AS window_failures,
    (SELECT max(start) FROM breaker_buckets WHERE key = b.key) AS last_bucket
  FROM breakers b`;

/**
 * The breaker store on a state.db connection: prepared statements created once, every method one
 * statement or one BEGIN IMMEDIATE transaction, time from the injected clock. Synchronous underneath:
 * the promises it returns are already settled.
 */
export class SqliteBreakerStore implements BreakerStore, BreakerAdmin {
  readonly db: Db;
  readonly #clock: Clock;
  readonly #ensure: Statement<[string, number]>;
  readonly #snapshot: Statement<[{ key: string; since: number }], SnapshotRow>;
  readonly #list: Statement<[{ since: number }], SnapshotRow>;
  readonly #count: Statement<[{ key: string; slot: number; start: number; calls: number; failures: number }]>;
  readonly #noteError: Statement<[string, string, number, string]>;
  readonly #write: Statement<[StateColumns & { key: string; version: number; updated_at: number }]>;
  readonly #resetWindow: Statement<[string]>;
  readonly #addTransition: Statement<[string, number, string, string, string]>;
  readonly #trim: Statement<[number]>;
  readonly #history: Statement<
    [number],
    { key: string; at: number; from: BreakerState; to: BreakerState; cause: string }
  >;
  readonly #removeRow: Statement<[string]>;
  readonly #recordTx: Database.Transaction<(key: string, tally: Tally, windowMs: number) => RecordResult>;
  readonly #transitTx: Database.Transaction<
    (key: string, version: number, change: TransitChange) => TransitResult
  >;
  readonly #removeTx: Database.Transaction<(key: string) => boolean>;

  constructor(db: Db, clock: Clock) {
    migrate(db, 'breaker', migrations);
    this.db = db;
    this.#clock = clock;
    this.#ensure = db.prepare(
      "INSERT INTO breakers (key, state, updated_at) VALUES (?, 'closed', ?) ON CONFLICT(key) DO NOTHING",
    );
    this.#snapshot = db.prepare(`${snapshotSelect} WHERE b.key = @key`);
    this.#list = db.prepare(snapshotSelect);
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
    this.#write = db.prepare(
      `UPDATE breakers SET state = @state, opened_at = @opened_at, retry_at = @retry_at,
         consecutive_opens = @consecutive_opens, probe_owner = @probe_owner, probe_until = @probe_until,
         reason = @reason, updated_at = @updated_at, version = version + 1
       WHERE key = @key AND version = @version`,
    );
    this.#resetWindow = db.prepare('DELETE FROM breaker_buckets WHERE key = ?');
    this.#addTransition = db.prepare(
      'INSERT INTO breaker_transitions (key, at, from_state, to_state, cause) VALUES (?, ?, ?, ?, ?)',
    );
    this.#trim = db.prepare(
      'DELETE FROM breaker_transitions WHERE id <= (SELECT max(id) FROM breaker_transitions) - ?',
    );
    this.#history = db.prepare(
      `SELECT key, at, from_state AS "from", to_state AS "to", cause
       FROM breaker_transitions ORDER BY id DESC LIMIT ?`,
    );
    this.#removeRow = db.prepare('DELETE FROM breakers WHERE key = ?');

    this.#recordTx = db.transaction((key: string, tally: Tally, windowMs: number): RecordResult => {
      const now = this.#clock.now();
      const apply = (): boolean => {
        if (tally.error) this.#noteError.run(tally.error.kind, tally.error.message, now, key);
        if (tally.calls === 0) return false;
        const { start, slot } = windowBucket(now, windowMs);
        return (
          this.#count.run({ key, slot, start, calls: tally.calls, failures: tally.failures }).changes > 0
        );
      };
      let counted = apply();
      let row = this.#snapshot.get({ key, since: now - windowMs });
      if (!row) {
        // Removed by hand (or never stored): it comes back closed, and the tally goes to it.
        this.#ensure.run(key, now);
        counted = apply();
        row = this.#snapshot.get({ key, since: now - windowMs });
      }
      return { counted, snapshot: row ? toSnapshot(row, now) : this.#read(key, windowMs, now) };
    });
    this.#transitTx = db.transaction((key: string, version: number, change: TransitChange): TransitResult => {
      const now = this.#clock.now();
      // A breaker never stored is at version 0: create it so the compare-and-set below can apply.
      if (version === 0) this.#ensure.run(key, now);
      const written = this.#write.run({ key, version, updated_at: now, ...toColumns(change.next) });
      if (written.changes === 0) return { ok: false };
      if (change.resetWindow) this.#resetWindow.run(key);
      if (change.note) {
        this.#addTransition.run(key, now, change.note.from, change.next.state, change.note.cause);
        this.#trim.run(keptTransitions);
      }
      return { ok: true, at: now };
    });
    this.#removeTx = db.transaction((key: string): boolean => {
      this.#resetWindow.run(key);
      return this.#removeRow.run(key).changes > 0;
    });
  }

  async ensure(key: string): Promise<void> {
    this.#ensure.run(key, this.#clock.now());
  }

  async read(key: string, windowMs: number): Promise<BreakerSnapshot> {
    return this.#read(key, windowMs, this.#clock.now());
  }

  async record(key: string, tally: Tally, windowMs: number): Promise<RecordResult> {
    return this.#recordTx.immediate(key, tally, windowMs);
  }

  async transit(key: string, version: number, change: TransitChange): Promise<TransitResult> {
    return this.#transitTx.immediate(key, version, change);
  }

  async list(windowMs: number): Promise<BreakerSnapshot[]> {
    const now = this.#clock.now();
    return this.#list.all({ since: now - windowMs }).map((row) => toSnapshot(row, now));
  }

  async history(limit: number): Promise<BreakerHistoryEntry[]> {
    return this.#history.all(limit);
  }

  async remove(key: string): Promise<boolean> {
    return this.#removeTx.immediate(key);
  }

  #read(key: string, windowMs: number, now: number): BreakerSnapshot {
    const row = this.#snapshot.get({ key, since: now - windowMs });
    return row ? toSnapshot(row, now) : unstoredSnapshot(key, now);
  }
}

/**
 * The breaker store on the state.db at `file`. With `create: false`, undefined when the file does not
 * exist: looking at breakers must not create a data directory.
 */
export function openSqliteBreakerStore(
  file: string,
  clock: Clock,
  options: { create: boolean },
): { store: SqliteBreakerStore; close(): void } | undefined {
  if (!options.create && !existsSync(file)) return undefined;
  const db = openDatabase(file);
  try {
    return { store: new SqliteBreakerStore(db, clock), close: () => db.close() };
  } catch (e) {
    db.close();
    throw e;
  }
}
