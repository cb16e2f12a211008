import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { FlashcardsError, storageError } from '../core/errors.ts';

export type Db = Database.Database;

export interface OpenOptions {
  readonly?: boolean;
  /** How long a statement waits for another process's write lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) a SQLite file in WAL mode, tuned for many small writes from
 * several processes. A file that is not a database becomes a one-line error naming it.
 */
export function openDatabase(file: string, options: OpenOptions = {}): Db {
  let db: Db | undefined;
  try {
    if (file !== ':memory:' && !options.readonly) mkdirSync(dirname(file), { recursive: true });
    db = new Database(file, {
      readonly: options.readonly ?? false,
      fileMustExist: options.readonly ?? false,
    });
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 10_000}`);
    if (!options.readonly) {
      setWalMode(db);
      // WAL + NORMAL: commits are atomic and durable across process crashes; only an OS crash
      // can lose the last few commits, never corrupt the file.
      db.pragma('synchronous = NORMAL');
    }
    db.pragma('foreign_keys = ON');
    // SQLite's default page cache (2 MiB a connection) fills as a run's files grow and was the one
    // part of memory that grew all through a run. Rows are written once and read by key a few
    // pages at a time: 1 MiB keeps the b-trees' inner pages, the OS page cache holds the rest.
    db.pragma('cache_size = -1024');
    // Touch the schema so a corrupt or foreign file fails here, not mid-run.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    return db;
  } catch (e) {
    db?.close();
    throw databaseError(file, e);
  }
}

/**
 * Switching a brand-new file to WAL needs an exclusive lock and SQLite answers SQLITE_BUSY at once
 * (without the busy timeout) when another process is opening the same file: retry briefly.
 */
function setWalMode(db: Db): void {
  for (let attempt = 1; ; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 40) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 * attempt);
    }
  }
}

export function databaseError(file: string, e: unknown): FlashcardsError {
  const code = (e as { code?: string }).code ?? '';
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT' || /not a database|malformed/i.test(message)) {
    return new FlashcardsError('database', `${file} is not a valid SQLite database (${message})`, {
      hint: `move it aside (mv ${file} ${file}.bad) and run again; a fresh one is created`,
      cause: e,
    });
  }
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR')) {
    const storage = storageError(e, file);
    if (storage) return storage;
  }
  if (['ENOTDIR', 'EACCES', 'EROFS', 'EEXIST', 'EPERM'].includes(code)) {
    return new FlashcardsError('database', `cannot create the data directory for ${file} (${message})`, {
      hint: 'set --home or FLASHCARDS_HOME to a writable directory',
      cause: e,
    });
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code === 'SQLITE_PERM') {
    return new FlashcardsError('database', `cannot open database ${file} (${message})`, {
      hint: 'check that the data directory exists and is writable, or set --home / FLASHCARDS_HOME',
      cause: e,
    });
  }
  return new FlashcardsError('database', `database ${file}: ${message}`, { cause: e });
}

/**
 * Applies a module's numbered migrations once. Each module (batch, limiter, breaker, cache)
 * owns its tables and its own version counter, so modules evolve independently.
 */
export function migrate(db: Db, module: string, steps: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  const current = (): number =>
    (
      db.prepare('SELECT version FROM schema_migrations WHERE module = ?').get(module) as
        | { version: number }
        | undefined
    )?.version ?? 0;
  if (current() >= steps.length) return;
  // IMMEDIATE: two processes starting together must not both apply the same step.
  db.transaction(() => {
    for (let v = current(); v < steps.length; v++) {
      db.exec(steps[v] ?? '');
    }
    db.prepare(
      'INSERT INTO schema_migrations (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version',
    ).run(module, steps.length);
  }).immediate();
}

/**
 * Runs `fn` on a database file that already exists, or returns undefined without creating
 * anything: read-only commands must not create a data directory just by looking.
 */
export function withExistingDatabase<T>(
  file: string,
  fn: (db: Db) => T,
  open: (file: string) => Db = openDatabase,
): T | undefined {
  if (!existsSync(file)) return undefined;
  const db = open(file);
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
