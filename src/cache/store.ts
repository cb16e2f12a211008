import type { Clock } from '../core/clock.ts';
import type { Random } from '../core/random.ts';
import type { CodecName } from './codec.ts';

/**
 * The response cache behind one small asynchronous interface, so a run reads and writes it the same
 * way on any backend: cache.db in the data directory (sqlite-store.ts, the default) or a shared Redis
 * (redis-store.ts), where a term answered on host A is a hit on host B. The rules both follow
 * (lifetime with jitter, when to compress, when an entry is stale) are plain functions in rules.ts;
 * the admin side (`cache stats|list|show|prune|clear`) is CacheAdmin in admin.ts.
 *
 * Each method is one atomic operation on its backend (SQLite: one statement, puts grouped into one
 * transaction; Redis: one Lua script) and reads the time itself at that moment (SQLite: its injected
 * Clock; Redis: TIME), so hosts agree on what is stale.
 */
export interface ResponseCache {
  /**
   * The stored response, or undefined on a miss. An expired entry is a miss unless `allowStale`
   * (serving something while the provider is down beats serving nothing). An entry this Node cannot
   * decode is a miss too: the fresh response the caller then fetches overwrites it.
   */
  get(key: string, opts?: { allowStale?: boolean }): Promise<CacheHit | undefined>;
  /** Stores (or replaces) a response; last writer wins when two processes put the same key. */
  put(key: string, entry: CacheEntryInput): Promise<void>;
  /** Upserts a run's hit/miss totals (absolute, not increments), so calling it periodically is safe. */
  recordRun(run: CacheRun): Promise<void>;
  /** Writes what is still queued and lets go of the backend. */
  close(): Promise<void>;
}

export interface CacheSettings {
  /** How long an entry lives before jitter; 0 = never expires. */
  ttlMs: number;
  /** Each entry lives ttlMs x U[1, 1 + jitter], so a batch written together does not expire together. */
  jitter: number;
  /** Bodies larger than this (UTF-8 bytes) are compressed; smaller ones are not worth the CPU. */
  compressThresholdBytes: number;
  /** Codec for new entries (default deflate, see defaultCodecName). Old entries keep their own codec. */
  codec?: CodecName;
}

export const DEFAULT_CACHE_SETTINGS: Readonly<CacheSettings> = {
  ttlMs: 30 * 86_400_000,
  jitter: 0.1,
  compressThresholdBytes: 1024,
};

export interface CacheDeps {
  clock: Clock;
  random: Random;
}

export interface CacheEntryInput {
  /** A complete, validated, successful response: the caller only puts those. */
  body: string;
  model: string;
  /** What the request was about (the word), for `cache list`. */
  term?: string | undefined;
  stage?: string | undefined;
}

export interface CacheHit {
  body: string;
  /** Past its expiry: only returned with allowStale. */
  stale: boolean;
  createdAt: number;
  expiresAt: number | null;
  model: string;
}

export interface CacheRun {
  runId: string;
  startedAt: number;
  hits: number;
  misses: number;
  model: string;
}
