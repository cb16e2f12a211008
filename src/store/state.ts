import { existsSync } from 'node:fs';
import type { BatchStores } from '../batch/store.ts';
import type { SubmissionStore } from '../batchapi/submissions.ts';
import type { CacheAdmin } from '../cache/admin.ts';
import type { CacheSettings, ResponseCache } from '../cache/store.ts';
import type { Clock } from '../core/clock.ts';
import { dataPaths } from '../core/home.ts';
import type { Random } from '../core/random.ts';
import type { LimiterAdmin, LimiterStore } from '../limiter/store.ts';
import type { BreakerAdmin, BreakerStore } from '../resilience/breaker-store.ts';
import type { StoreHealth } from './health.ts';

/**
 * The state every process on a batch, a key or a breaker shares: in the data directory's state.db
 * (the default), or in Redis with `--store redis://...` (several hosts). Commands and runs reach
 * batches, the limiter and the breaker only through this, so both backends serve them the same.
 */
export interface SharedState {
  kind: 'sqlite' | 'redis';
  /** Where the state is, as messages name it: state.db's path, or the store URL (password hidden). */
  where: string;
  batches: BatchStores;
  limiter: { store: LimiterStore; admin: LimiterAdmin };
  breaker: { store: BreakerStore & BreakerAdmin };
  /** What batches sent to providers' batch APIs (`process --batch-api`), step by step. */
  batchApi: SubmissionStore;
  /**
   * The response cache: cache.db beside state.db, or the store's (shared by every host). `open`
   * gives undefined when `create` is false and there is no cache yet; the caller closes what it
   * opened. The admin is what the `cache` commands read and prune.
   */
  cache: {
    open(
      settings: CacheSettings,
      deps: { random: Random },
      options?: { create?: boolean },
    ): ResponseCache | undefined;
    admin(): CacheAdmin;
  };
  /**
   * The time the state is kept in: this host's clock for state.db; for Redis, the server's TIME
   * as estimated from here (hosts' clocks differ; the stores' scripts read TIME themselves, and
   * the limiter's and breaker's own arithmetic must agree with them).
   */
  clock: Clock;
  /** Whether the store answers (always, for state.db). */
  health: StoreHealth;
  /**
   * The store's epoch for Redis (see redis/epoch.ts): answers kept in the outbox while the store
   * was away are written back only into the same epoch. Undefined for state.db.
   */
  epoch: string | undefined;
  /** Commits what is queued (group commits) and closes the connection. */
  close(): Promise<void>;
}

export interface OpenStateOptions {
  /** The data directory (state.db lives there without a store URL). */
  home: string;
  /** `--store`, FLASHCARDS_STORE or the config's `store`; undefined: state.db. */
  store?: string | undefined;
  clock: Clock;
  /** A command that only looks gets undefined instead of a new, empty state. */
  create: boolean;
  /** How long a Redis command may go without a reply (a frozen server must not hang a run). */
  commandTimeoutMs?: number | undefined;
  /** A password for a store URL that has none (FLASHCARDS_REDIS_PASSWORD). */
  password?: string | undefined;
}

/**
 * How long a Redis command may go unanswered before the store counts as away. Long enough for a
 * busy server's slow moment, short enough that a run stops claiming and booking within seconds.
 */
export const DEFAULT_COMMAND_TIMEOUT_MS = 2000;

/**
 * Opens the shared state. SQLite modules load as today; the Redis backend (and its client) only
 * when a store URL is given. Undefined when `create` is false and there is no state yet.
 */
export async function openState(o: OpenStateOptions & { create: true }): Promise<SharedState>;
export async function openState(o: OpenStateOptions): Promise<SharedState | undefined>;
export async function openState(o: OpenStateOptions): Promise<SharedState | undefined> {
  if (o.store !== undefined && o.store !== '') {
    const { openRedisState } = await import('./redis/state.ts');
    return openRedisState({
      url: o.store,
      home: o.home,
      clock: o.clock,
      create: o.create,
      commandTimeoutMs: o.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
      password: o.password,
    });
  }
  const { stateDb: file, cacheDb } = dataPaths(o.home);
  if (!o.create && !existsSync(file)) return undefined;
  const [{ openDatabase }, { sqliteState }] = await Promise.all([
    import('../db/open.ts'),
    import('./sqlite-state.ts'),
  ]);
  const db = openDatabase(file);
  try {
    return sqliteState(db, file, o.clock, cacheDb);
  } catch (e) {
    db.close();
    throw e;
  }
}
