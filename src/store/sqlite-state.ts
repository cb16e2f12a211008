import { existsSync } from 'node:fs';
import { openSqliteBatchStores } from '../batch/sqlite-stores.ts';
import type { BatchStores } from '../batch/store.ts';
import { type SubmissionStore, sqliteSubmissionStore } from '../batchapi/submissions.ts';
import { sqliteCacheAdmin } from '../cache/sqlite-admin.ts';
import { SqliteResponseCache as ResponseCache } from '../cache/sqlite-store.ts';
import type { Clock } from '../core/clock.ts';
import type { Db } from '../db/open.ts';
import { sqliteLimiterAdmin } from '../limiter/sqlite-admin.ts';
import { sqliteLimiterStore } from '../limiter/sqlite-store.ts';
import type { LimiterAdmin, LimiterStore } from '../limiter/store.ts';
import { SqliteBreakerStore } from '../resilience/breaker-store-sqlite.ts';
import { alwaysThere } from './health.ts';
import type { SharedState } from './state.ts';

/**
 * The shared state on an open state.db, with the response cache in its own file beside it. Each part is built when first used: building a store
 * creates (migrates) its tables, and a command that only looks (`limiter status`) must not add
 * the batch or breaker tables to a database it reads. Closing it closes the database.
 */
export function sqliteState(db: Db, file: string, clock: Clock, cacheFile: string): SharedState {
  let batches: BatchStores | undefined;
  let limiterStore: LimiterStore | undefined;
  let limiterAdmin: LimiterAdmin | undefined;
  let breaker: { store: SqliteBreakerStore } | undefined;
  let batchApi: SubmissionStore | undefined;
  return {
    kind: 'sqlite',
    where: file,
    cache: {
      open: (settings, deps, options) =>
        options?.create === false && !existsSync(cacheFile)
          ? undefined
          : ResponseCache.open(cacheFile, settings, { clock, random: deps.random }),
      admin: () => sqliteCacheAdmin(cacheFile, { clock }),
    },
    clock,
    health: alwaysThere,
    epoch: undefined,
    get batches() {
      batches ??= openSqliteBatchStores(db, clock);
      return batches;
    },
    limiter: {
      get store() {
        limiterStore ??= sqliteLimiterStore(db, { clock });
        return limiterStore;
      },
      get admin() {
        limiterAdmin ??= sqliteLimiterAdmin(db, { clock });
        return limiterAdmin;
      },
    },
    get batchApi() {
      batchApi ??= sqliteSubmissionStore(db);
      return batchApi;
    },
    get breaker() {
      breaker ??= { store: new SqliteBreakerStore(db, clock) };
      return breaker;
    },
    close: async () => {
      try {
        await batches?.results.flush();
      } finally {
        db.close();
      }
    },
  };
}
