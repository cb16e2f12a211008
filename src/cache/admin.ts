import { statSync } from 'node:fs';
import type { Db } from '../db/open.ts';
import type { CacheRun } from './store.ts';

/** Queries behind the `cache` commands: read-mostly, never on the worker's hot path. */

export interface CacheTotals {
  entries: number;
  live: number;
  expired: number;
  originalBytes: number;
  storedBytes: number;
}

export interface CacheStats extends CacheTotals {
  /** originalBytes / storedBytes; 0 for an empty cache. */
  compressionRatio: number;
  /** Summed over `recentRuns`. */
  hits: number;
  misses: number;
  /** created_at of the oldest and newest entries, ms since the epoch. */
  oldest: number | null;
  newest: number | null;
  perModel: Record<string, CacheTotals>;
  perCodec: Record<string, number>;
  recentRuns: CacheRun[];
}

export interface EntrySummary {
  key: string;
  model: string;
  term: string | null;
  stage: string | null;
  codec: string;
  originalBytes: number;
  storedBytes: number;
  createdAt: number;
  expiresAt: number | null;
}

export interface EntryWithBody extends EntrySummary {
  body: Buffer;
}

/** Which rows a delete touches; every given condition must hold. */
export interface EntryFilter {
  /** Rows whose expiry is at or before this time. */
  expiredAt?: number | undefined;
  model?: string | undefined;
  /** Rows created strictly before this time. */
  createdBefore?: number | undefined;
}

export interface Deleted {
  rows: number;
  originalBytes: number;
  storedBytes: number;
}

export const RECENT_RUNS = 10;
/** cache_runs rows kept by prune; one row per run, so this is months of history. */
export const KEPT_RUNS = 100;
/** Rows per DELETE: short write transactions let other processes' puts interleave. */
export const DELETE_BATCH = 500;

const SUMMARY_COLUMNS = `key, model, term, stage, codec, original_bytes AS originalBytes, stored_bytes AS storedBytes,
  created_at AS createdAt, expires_at AS expiresAt`;

export function emptyStats(): CacheStats {
  return {
    entries: 0,
    live: 0,
    expired: 0,
    originalBytes: 0,
    storedBytes: 0,
    compressionRatio: 0,
    hits: 0,
    misses: 0,
    oldest: null,
    newest: null,
    perModel: {},
    perCodec: {},
    recentRuns: [],
  };
}

export function readStats(db: Db, now: number, recentRuns = RECENT_RUNS): CacheStats {
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

/** Most recently written entries first. */
export function listEntries(db: Db, limit: number): EntrySummary[] {
  return db
    .prepare(`SELECT ${SUMMARY_COLUMNS} FROM responses ORDER BY created_at DESC, key LIMIT ?`)
    .all(limit) as EntrySummary[];
}

/** Entries whose key starts with a lowercase hex `prefix`, at most `limit` of them, in key order. */
export function findByPrefix(db: Db, prefix: string, limit: number): EntryWithBody[] {
  // A range on the primary key uses its index, unlike LIKE; 'g' sorts after every hex digit.
  return db
    .prepare(`SELECT ${SUMMARY_COLUMNS}, body FROM responses WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`)
    .all(prefix, `${prefix}g`, limit) as EntryWithBody[];
}

/** The filter as SQL conditions joined by AND ('' for no filter) and their named parameters. */
function whereClause(filter: EntryFilter): { sql: string; params: Record<string, number | string> } {
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

export function countEntries(db: Db, filter: EntryFilter): number {
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
export function deleteEntries(db: Db, filter: EntryFilter, batchSize = DELETE_BATCH): Deleted {
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
export function trimRuns(db: Db, keep = KEPT_RUNS): number {
  return db
    .prepare(
      'DELETE FROM cache_runs WHERE run_id NOT IN (SELECT run_id FROM cache_runs ORDER BY started_at DESC, run_id LIMIT ?)',
    )
    .run(keep).changes;
}

/** Size of the database and its WAL on disk, in bytes. */
export function fileBytes(file: string): number {
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
export function reclaimSpace(db: Db): void {
  db.pragma('wal_checkpoint(TRUNCATE)');
  if (db.pragma('auto_vacuum', { simple: true }) === 2) {
    db.pragma('incremental_vacuum');
  } else {
    db.exec('VACUUM');
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
}
