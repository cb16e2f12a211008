import { SqliteResponseCache } from './sqlite-store.ts';
import type { CacheDeps, CacheSettings, ResponseCache as ResponseCacheInterface } from './store.ts';

export type {
  CacheAdmin,
  CacheStats,
  CacheTotals,
  ClearFilter,
  Deleted,
  EntrySummary,
  EntryWithBody,
  Pruned,
} from './admin.ts';
export { CODEC_NAMES, type Codec, type CodecName, defaultCodecName, isCodecName } from './codec.ts';
export {
  CACHE_SCHEMA_VERSION,
  type CacheKeyInput,
  type ChatMessageLike,
  cacheKey,
  cacheKeyer,
  canonicalJson,
} from './key.ts';
export { SingleFlight } from './single-flight.ts';
export { sqliteCacheAdmin } from './sqlite-admin.ts';
export { SqliteResponseCache } from './sqlite-store.ts';
export {
  type CacheDeps,
  type CacheEntryInput,
  type CacheHit,
  type CacheRun,
  type CacheSettings,
  DEFAULT_CACHE_SETTINGS,
} from './store.ts';
// The Redis backend (redis-store.ts) is not re-exported: importing it loads nothing heavy, but a
// run without --store has no reason to parse it either.

/** The cache interface every backend implements (store.ts). */
export type ResponseCache = ResponseCacheInterface;

/** The default backend by the interface's name: `ResponseCache.open(file, ...)` opens cache.db. */
export const ResponseCache = {
  open: (file: string, settings: CacheSettings, deps: CacheDeps): SqliteResponseCache =>
    SqliteResponseCache.open(file, settings, deps),
};
