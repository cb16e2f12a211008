import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import { SqliteBreakerStore } from '../src/resilience/breaker-store-sqlite.ts';
import { breakerStoreConformance } from './conformance/breaker-store.ts';

/** A state.db in a temp dir per test; every connect() is its own connection, like another process. */
breakerStoreConformance('SQLite', async (clock) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-breaker-'));
  const file = join(dir, 'state.db');
  const dbs: Db[] = [];
  return {
    async connect() {
      const db = openDatabase(file);
      dbs.push(db);
      return new SqliteBreakerStore(db, clock);
    },
    async close() {
      for (const db of dbs) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

test('a state.db written by release 0.1 opens with its breakers, history and window intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-breaker-'));
  const file = join(dir, 'state.db');
  const old = openDatabase(file);
  // The schema and rows exactly as release 0.1 wrote them (breaker migration 1 only).
  old.exec(`
    CREATE TABLE schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL);
    INSERT INTO schema_migrations VALUES ('breaker', 1);
    CREATE TABLE breakers (
      key TEXT PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('closed', 'open', 'half_open', 'isolated')),
      opened_at INTEGER, retry_at INTEGER, consecutive_opens INTEGER NOT NULL DEFAULT 0,
      probe_owner TEXT, probe_until INTEGER, reason TEXT,
      last_error_kind TEXT, last_error_message TEXT, last_error_at INTEGER,
      updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE breaker_buckets (
      key TEXT NOT NULL, slot INTEGER NOT NULL, start INTEGER NOT NULL,
      calls INTEGER NOT NULL, failures INTEGER NOT NULL, PRIMARY KEY (key, slot)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE breaker_transitions (
      id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at INTEGER NOT NULL,
      from_state TEXT NOT NULL, to_state TEXT NOT NULL, cause TEXT NOT NULL
    ) STRICT;
    INSERT INTO breakers VALUES ('a', 'open', 1000, 31000, 1, NULL, NULL, 'tripped', 'server', 'HTTP 503', 1000, 1000);
    -- A half-open row keeps the retry_at of the open state it came from.
    INSERT INTO breakers VALUES ('b', 'half_open', 1000, 31000, 2, 'run-9', 121000, 'tripped', NULL, NULL, NULL, 31000);
    INSERT INTO breakers VALUES ('c', 'isolated', 5000, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, 5000);
    INSERT INTO breaker_buckets VALUES ('a', 0, 0, 10, 10);
    INSERT INTO breaker_transitions (key, at, from_state, to_state, cause) VALUES ('a', 1000, 'closed', 'open', 'tripped');
  `);
  old.close();
  const db = openDatabase(file);
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = new FakeClock(2000);
  const store = new SqliteBreakerStore(db, clock);
  const byKey = Object.fromEntries((await store.list(30_000)).map((s) => [s.key, s]));
  assert.deepEqual(byKey['a'], {
    key: 'a',
    circuit: { state: 'open', openedAt: 1000, retryAt: 31000, opens: 1, reason: 'tripped' },
    version: 0,
    window: { calls: 10, failures: 10 },
    lastError: { kind: 'server', message: 'HTTP 503', at: 1000 },
    lastActiveAt: 1000,
    now: 2000,
  });
  assert.deepEqual(byKey['b']?.circuit, {
    state: 'half_open',
    openedAt: 1000,
    opens: 2,
    probe: { owner: 'run-9', until: 121000 },
    reason: 'tripped',
  });
  assert.deepEqual(byKey['c']?.circuit, { state: 'isolated', openedAt: 5000, opens: 0, reason: null });
  assert.deepEqual(await store.history(5), [
    { key: 'a', at: 1000, from: 'closed', to: 'open', cause: 'tripped' },
  ]);
  // Version 0 is the compare-and-set token of every row the old release wrote.
  assert.deepEqual(
    await store.transit('a', 0, { next: { state: 'closed' }, note: null, resetWindow: true }),
    {
      ok: true,
      at: 2000,
    },
  );
  assert.equal(
    (
      db.prepare("SELECT version FROM schema_migrations WHERE module = 'breaker'").get() as {
        version: number;
      }
    ).version,
    2,
  );
});
