import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import { sqliteLimiterAdmin, sqliteLimiterStore } from '../src/limiter/index.ts';
import { keyStatuses } from '../src/limiter/status.ts';
import { limiterStoreConformance } from './conformance/limiter-store.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDb(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-lim-'));
  dirs.push(dir);
  return path.join(dir, 'state.db');
}

/** The limiter tables as release 0.1.0 left them: migrations 1 and 2, with a key paced at 600 RPM. */
function releaseDb(file: string, now: number): void {
  const db = openDatabase(file);
  db.exec(`
    CREATE TABLE schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL);
    INSERT INTO schema_migrations VALUES ('limiter', 2);
    CREATE TABLE limiter_keys (
      key TEXT PRIMARY KEY, shards INTEGER NOT NULL DEFAULT 1, rpm REAL, rpm_burst REAL, tpm REAL, tpm_burst REAL,
      configured_rpm REAL, configured_tpm REAL, header_rpm REAL, header_tpm REAL, header_at REAL, aimd_rpm REAL,
      aimd_at REAL, paused_until REAL NOT NULL DEFAULT 0, pause_reason TEXT, strikes INTEGER NOT NULL DEFAULT 0,
      observed_at REAL, updated_at REAL NOT NULL);
    CREATE TABLE limiter_shards (
      key TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('rpm', 'tpm')), shard INTEGER NOT NULL, tat REAL NOT NULL,
      updated_at REAL NOT NULL, PRIMARY KEY (key, kind, shard)) WITHOUT ROWID;
    CREATE TABLE limiter_rates (
      key TEXT NOT NULL, process TEXT NOT NULL, accepted REAL NOT NULL, admitted REAL NOT NULL, since REAL NOT NULL,
      at REAL NOT NULL, PRIMARY KEY (key, process)) WITHOUT ROWID;
  `);
  db.prepare(
    `INSERT INTO limiter_keys (key, shards, rpm, rpm_burst, configured_rpm, header_rpm, observed_at, updated_at)
     VALUES ('k', 1, 600, 10, 600, 900, @now, @now)`,
  ).run({ now });
  db.prepare(`INSERT INTO limiter_shards VALUES ('k', 'rpm', 0, @tat, @now)`).run({ tat: now + 300, now });
  db.close();
}

describe('SQLite limiter state written by the previous release', () => {
  test('limiter status reads it without migrating it, with the booking tau', async () => {
    const clock = new FakeClock();
    const file = tempDb();
    releaseDb(file, clock.now());
    const db = openDatabase(file);
    const { now, keys } = await sqliteLimiterAdmin(db, { clock }).read();
    assert.equal(keys[0]?.row.max_request_tokens, null);
    // tau = 10 x 100 ms - 200 ms of slack; 300 ms are booked: (800 - 300) / 100.
    assert.equal(keyStatuses(keys, now)[0]?.buckets[0]?.available, 5);
    assert.equal(
      db.prepare("SELECT version FROM schema_migrations WHERE module = 'limiter'").pluck().get(),
      2,
    );
    db.close();
  });

  test('a store opens it, migrates it and books on its buckets and learned limits', async () => {
    const clock = new FakeClock();
    const file = tempDb();
    releaseDb(file, clock.now());
    const db = openDatabase(file);
    const store = sqliteLimiterStore(db, { clock });
    assert.equal(
      db.prepare("SELECT version FROM schema_migrations WHERE module = 'limiter'").pluck().get(),
      4,
    );
    const row = await store.readKey('k');
    assert.deepEqual(
      [row?.rpm, row?.header_rpm, row?.observed_at, row?.max_request_tokens],
      [600, 900, clock.now(), null],
    );
    const booking = await store.book('k', {
      shards: [0, 0],
      buckets: [{ kind: 'rpm', costMs: 100, tauMs: 800 }],
      maxWaitMs: 0,
      refunds: [],
    });
    assert.deepEqual(booking, {
      ok: true,
      now: clock.now(),
      delayMs: 0,
      charges: [{ kind: 'rpm', shard: 0, costMs: 100, after: clock.now() + 400 }],
    });
    db.close();
  });
});

limiterStoreConformance('SQLite', async (clock) => {
  const file = tempDb();
  const dbs: Db[] = [];
  const connect = (): Db => {
    const db = openDatabase(file);
    dbs.push(db);
    return db;
  };
  return {
    store: async () => sqliteLimiterStore(connect(), { clock }),
    admin: async () => sqliteLimiterAdmin(connect(), { clock }),
    close: async () => {
      for (const db of dbs) db.close();
    },
  };
});
