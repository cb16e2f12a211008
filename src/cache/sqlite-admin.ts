import { statSync } from 'node:fs';
import type { Clock } from '../core/clock.ts';
import { isFlashcardsError } from '../core/errors.ts';
import { type Db, databaseError, withExistingDatabase } from '../db/open.ts';
import {
  type CacheAdmin,
  type CacheStats,
  type CacheTotals,
  type ClearFilter,
  type Deleted,
  type EntrySummary,
  type EntryWithBody,
  emptyStats,
  KEPT_RUNS,
  RECENT_RUNS,
} from './admin.ts';
import { openCacheDb } from './db.ts';
import type { CacheRun } from './store.ts';

/** Rows per DELETE: short write transactions let other processes' puts interleave. */
export const DELETE_BATCH = 500;

const SUMMARY_COLUMNS = `key, model, term, stage, codec, original_bytes AS originalBytes, stored_bytes AS storedBytes,
  created_at AS createdAt, expires_at AS expiresAt`;

/** Which rows a delete touches; every given condition must hold. */
interface RowFilter {
  /** Rows whose expiry is at or before this time. */
  expiredAt?: number | undefined;
  model?: string | undefined;
  /** Rows created strictly before this time. */
  createdBefore?: number | undefined;
}

/**
 * The `cache` commands on cache.db. Each call opens the file and closes it again, and a missing file
 * reads as an empty cache without being created (a read-only command must not make a data directory).
 * Time (live or expired, older than) comes from `clock`, read once per call.
 */
export function sqliteCacheAdmin(file: string, deps: { clock: Clock }): CacheAdmin {
  const withDb = <T>(fn: (db: Db) => T): T | undefined => {
    try {
      return withExistingDatabase(file, fn, openCacheDb);
    } catch (e) {
      throw isFlashcardsError(e) ? e : databaseError(file, e);
    }
  };
  const none: Deleted = { rows: 0, originalBytes: 0, storedBytes: 0 };
  return {
    location: file,
    medium: 'file',
    async footprint() {
      return fileBytes(file);
    },
    async stats(recentRuns = RECENT_RUNS) {
      const now = deps.clock.now();
      return withDb((db) => readStats(db, now, recentRuns)) ?? emptyStats();
    },
    async list(limit) {
      return (
        withDb(
          (db) =>
            db
              .prepare(`SELECT ${SUMMARY_COLUMNS} FROM responses ORDER BY created_at DESC, key LIMIT ?`)
              .all(limit) as EntrySummary[],
        ) ?? []
      );
    },
    async show(prefix, limit) {
      // A range on the primary key uses its index, unlike LIKE; 'g' sorts after every hex digit.
      return (
        withDb(
          (db) =>
            db
              .prepare(
                `SELECT ${SUMMARY_COLUMNS}, body FROM responses WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`,
              )
              .all(prefix, `${prefix}g`, limit) as EntryWithBody[],
        ) ?? []
      );
    },
    async count(filter) {
      const rows = rowFilter(filter, deps.clock.now());
      return withDb((db) => countEntries(db, rows)) ?? 0;
    },
    async prune() {
      const now = deps.clock.now();
      return (
        withDb((db) => {
          const deleted = deleteEntries(db, { expiredAt: now });
          const runsTrimmed = trimRuns(db);
          reclaimSpace(db);
          return { ...deleted, runsTrimmed };
        }) ?? { ...none, runsTrimmed: 0 }
      );
    },
    async clear(filter) {
      const rows = rowFilter(filter, deps.clock.now());
      return (
        withDb((db) => {
          const deleted = deleteEntries(db, rows);
          reclaimSpace(db);
          return deleted;
        }) ?? none
      );
    },
    async close() {},
  };
}

function rowFilter(filter: ClearFilter, now: number): RowFilter {
  return {
    model: filter.model,
    createdBefore: filter.olderThanMs === undefined ? undefined : now - filter.olderThanMs,
  };
}

function readStats(db: Db, now: number, recentRuns: number): CacheStats {
  const stats = emptyStats();
  const byModel = db
    .prepare(
      `SELECT model, count(*) AS entries,
         coalesce(sum(expires_at IS NOT NULL AND expires_at <= ?), 0) AS expired,
         coalesce(sum(original_bytes), 0) AS originalBytes, coalesce(sum(stored_bytes), 0) AS storedBytes,
         min(created_at) AS oldest, max(created_at) AS newest
       FROM responses GROUP BY model ORDER BY model`,
    )
    .all(now) as (Omit<CacheTotals, 'live'> & { model: string; oldest: number; newest: number })[];
  for (const m of byModel) {
    const totals = {
      entries: m.entries,
      live: m.entries - m.expired,
      expired: m.expired,
      originalBytes: m.originalBytes,
      storedBytes: m.storedBytes,
    };
    stats.perModel[m.model] = totals;
    stats.entries += totals.entries;
    stats.live += totals.live;
    stats.expired += totals.expired;
    stats.originalBytes += totals.originalBytes;
    stats.storedBytes += totals.storedBytes;
    stats.oldest = Math.min(stats.oldest ?? m.oldest, m.oldest);
    stats.newest = Math.max(stats.newest ?? m.newest, m.newest);
  }
  stats.compressionRatio = stats.storedBytes === 0 ? 0 : stats.originalBytes / stats.storedBytes;
  const codecs = db
    .prepare('SELECT codec, count(*) AS n FROM responses GROUP BY codec ORDER BY codec')
    .all() as {
    codec: string;
    n: number;
  }[];
  for (const c of codecs) stats.perCodec[c.codec] = c.n;
  stats.recentRuns = db
    .prepare(
      `SELECT run_id AS runId, started_at AS startedAt, hits, misses, model
       FROM cache_runs ORDER BY started_at DESC, run_id LIMIT ?`,
    )
    .all(recentRuns) as CacheRun[];
  for (const run of stats.recentRuns) {
    stats.hits += run.hits;
    stats.misses += run.misses;
  }
  return stats;
}

/** The filter as SQL conditions joined by AND ('' for no filter) and their named parameters. */
function whereClause(filter: RowFilter): { sql: string; params: Record<string, number | string> } {
  const conditions: string[] = [];
  const params: Record<string, number | string> = {};
  if (filter.expiredAt !== undefined) {
    conditions.push('expires_at IS NOT NULL AND expires_at <= @expiredAt');
    params['expiredAt'] = filter.expiredAt;
  }
  if (filter.model !== undefined) {
    conditions.push('model = @model');
    params['model'] = filter.model;
  }
  if (filter.createdBefore !== undefined) {
    conditions.push('created_at < @createdBefore');
    params['createdBefore'] = filter.createdBefore;
  }
  return { sql: conditions.map((c) => `(${c})`).join(' AND '), params };
}

function countEntries(db: Db, filter: RowFilter): number {
  const { sql, params } = whereClause(filter);
  return (
    db.prepare(`SELECT count(*) AS n FROM responses ${sql ? `WHERE ${sql}` : ''}`).get(params) as {
      n: number;
    }
  ).n;
}

/**
 * Deletes matching rows `batchSize` at a time, each batch its own short transaction, so a large
 * prune never holds the write lock long enough to stall another process's puts. Batches walk the
 * table in rowid order, so the whole delete reads each row once (there is no index to seek by).
 */
function deleteEntries(db: Db, filter: RowFilter, batchSize = DELETE_BATCH): Deleted {
  const { sql, params } = whereClause(filter);
  const batch = db.prepare(
    `DELETE FROM responses WHERE rowid IN (
       SELECT rowid FROM responses WHERE rowid > @after ${sql ? `AND ${sql}` : ''} ORDER BY rowid LIMIT @batchSize)
     RETURNING rowid AS id, original_bytes AS originalBytes, stored_bytes AS storedBytes`,
  );
  const deleted: Deleted = { rows: 0, originalBytes: 0, storedBytes: 0 };
  let after = 0;
  for (;;) {
    const rows = batch.all({ ...params, after, batchSize }) as {
      id: number;
      originalBytes: number;
      storedBytes: number;
    }[];
    for (const r of rows) {
      deleted.rows++;
      deleted.originalBytes += r.originalBytes;
      deleted.storedBytes += r.storedBytes;
      after = Math.max(after, r.id);
    }
    if (rows.length < batchSize) return deleted;
  }
}

/** Drops hit/miss history beyond the newest `keep` runs; returns how many rows went. */
function trimRuns(db: Db, keep = KEPT_RUNS): number {
  return db
    .prepare(
      'DELETE FROM cache_runs WHERE run_id NOT IN (SELECT run_id FROM cache_runs ORDER BY started_at DESC, run_id LIMIT ?)',
    )
    .run(keep).changes;
}

/** Size of the database and its WAL on disk, in bytes. */
function fileBytes(file: string): number {
  let total = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      total += statSync(f).size;
    } catch {
      // A missing WAL just means it was checkpointed away.
    }
  }
  return total;
}

/**
 * Gives freed pages back to the OS: empties the WAL, then vacuums (incrementally when the file
 * was created that way, which avoids rewriting the whole file), then empties the WAL again.
 */
function reclaimSpace(db: Db): void {
  db.pragma('wal_checkpoint(TRUNCATE)');
  if (db.pragma('auto_vacuum', { simple: true }) === 2) {
    db.pragma('incremental_vacuum');
  } else {
    db.exec('VACUUM');
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
}
