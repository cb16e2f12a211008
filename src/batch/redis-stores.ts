import type { Clock } from '../core/clock.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { RedisBatchCatalog } from './redis-catalog.ts';
import { RedisBatchDb } from './redis-db.ts';
import { RedisBatchResults } from './redis-results.ts';
import { RedisWorkQueue } from './redis-work-queue.ts';
import type { BatchStores } from './store.ts';

export interface RedisBatchStoreOptions {
  /**
   * The namespace every key starts with (default `fc:`): several deployments, or tests side by
   * side, can share one Redis under different prefixes.
   */
  prefix?: string | undefined;
  /**
   * Tests only: time from this clock instead of the server's TIME (the scripts get it as an
   * argument). Left out in production, so that hosts whose clocks differ agree on every lease.
   */
  clock?: Clock | undefined;
}

/**
 * The batch catalog, work queue and results on one Redis connection (a server or a cluster; see
 * src/store/redis/connection.ts), the same `BatchStores` that `openSqliteBatchStores` gives.
 * Every operation that reads and writes is one Lua script on one batch's keys (one slot), with
 * time from Redis TIME; the key layout is described in redis-db.ts. Job outcomes are sent at
 * once, and reads through any of the three wait for those still in flight. The caller owns
 * `conn`: `results.flush()` before closing it waits for the last outcomes.
 */
export function openRedisBatchStores(
  conn: RedisConnection,
  options: RedisBatchStoreOptions = {},
): BatchStores {
  const shared = new RedisBatchDb(conn, options.prefix ?? 'fc:', options.clock);
  return {
    catalog: new RedisBatchCatalog(shared),
    queue: new RedisWorkQueue(shared),
    results: new RedisBatchResults(shared),
  };
}
