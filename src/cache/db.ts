import { isFlashcardsError } from '../core/errors.ts';
import { type Db, databaseError, migrate, openDatabase } from '../db/open.ts';

/**
 * Numbered, append-only: never edit a step once released, add another.
 * `responses` has no secondary index on purpose: each one adds a dirty page to every put's
 * commit (measured: ~31 -> ~49 µs per put with indexes on created_at and expires_at), while
 * the only queries that would use them are the rare `cache` commands, which scan instead.
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE responses (
     key            TEXT PRIMARY KEY NOT NULL,
     model          TEXT NOT NULL,
     term           TEXT,
     stage          TEXT,
     codec          TEXT NOT NULL,
     body           BLOB NOT NULL,
     original_bytes INTEGER NOT NULL,
     stored_bytes   INTEGER NOT NULL,
     created_at     INTEGER NOT NULL,
     expires_at     INTEGER
   )`,
  `CREATE TABLE cache_runs (
     run_id     TEXT PRIMARY KEY NOT NULL,
     started_at INTEGER NOT NULL,
     hits       INTEGER NOT NULL,
     misses     INTEGER NOT NULL,
     model      TEXT NOT NULL
   );
   CREATE INDEX cache_runs_started ON cache_runs (started_at);`,
];

/** Opens (creating if needed) the cache database with its tables. */
export function openCacheDb(file: string): Db {
  // openDatabase already retries the WAL switch when several processes create the file at once.
  const db = openDatabase(file);
  try {
    const tables = db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number };
    if (tables.n === 0) {
      // Only a fresh file can switch to incremental auto-vacuum cheaply; it lets `cache prune`
      // hand pages back to the OS without rewriting the whole file (VACUUM) under an exclusive lock.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.exec('VACUUM');
    }
    migrate(db, 'cache', MIGRATIONS);
    return db;
  } catch (e) {
    db.close();
    throw isFlashcardsError(e) ? e : databaseError(file, e);
  }
}
