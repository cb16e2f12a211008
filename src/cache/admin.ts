import type { CacheRun } from './store.ts';

/**
 * What the `cache` commands read and do, on any backend (sqlite-admin.ts, redis-admin.ts): never on
 * a worker's hot path. Methods that decide on time (live or expired, older than) read the backend's
 * own clock, like the store. An empty or missing cache answers with zeros and empty lists; reading
 * never creates anything.
 */
export interface CacheAdmin {
  /** Where the cache lives, as `cache stats` names it: a file path, or a store URL and namespace. */
  readonly location: string;
  /** What `footprint` measures: the file on disk (and its WAL), or the keys' memory in Redis. */
  readonly medium: 'file' | 'memory';
  /** Bytes the cache takes now (see `medium`). */
  footprint(): Promise<number>;
  stats(recentRuns?: number): Promise<CacheStats>;
  /** Most recently written entries first (ties by key), at most `limit`. */
  list(limit: number): Promise<EntrySummary[]>;
  /** Entries whose key starts with `prefix` (lowercase hex), in key order, at most `limit`. */
  show(prefix: string, limit: number): Promise<EntryWithBody[]>;
  /** How many entries `clear(filter)` would delete now. */
  count(filter: ClearFilter): Promise<number>;
  /**
   * Deletes the entries that are expired now (also the stale ones --stale-if-error could still
   * serve), trims hit/miss history to the newest KEPT_RUNS runs, and hands freed space back.
   */
  prune(): Promise<Pruned>;
  /** Deletes the entries matching every condition given (all of them with none), and hands space back. */
  clear(filter: ClearFilter): Promise<Deleted>;
  close(): Promise<void>;
}

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
  /** By model, in model order. */
  perModel: Record<string, CacheTotals>;
  /** Entries by codec, in codec order. */
  perCodec: Record<string, number>;
  /** Newest first (ties by run id). */
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
  /** As stored (compressed with `codec`). */
  body: Buffer;
}

/** Which entries `cache clear` deletes; every given condition must hold. */
export interface ClearFilter {
  model?: string | undefined;
  /** Entries created more than this long ago (strictly before the backend's now minus this). */
  olderThanMs?: number | undefined;
}

export interface Deleted {
  rows: number;
  originalBytes: number;
  storedBytes: number;
}

export interface Pruned extends Deleted {
  /** Hit/miss history rows dropped beyond the newest KEPT_RUNS. */
  runsTrimmed: number;
}

export const RECENT_RUNS = 10;
/** Runs kept by prune; one per run, so this is months of history. */
export const KEPT_RUNS = 100;

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
