import { existsSync } from 'node:fs';
import type { BatchStores } from '../batch/store.ts';
import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';
import { dataPaths } from '../core/home.ts';
import type { LimiterAdmin, LimiterStore } from '../limiter/store.ts';
import type { BreakerAdmin, BreakerStore } from '../resilience/breaker-store.ts';

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
 * Opens the shared state. SQLite modules load as today; the Redis backend (and its client) only
 * when a store URL is given. Undefined when `create` is false and there is no state yet.
 */
export async function openState(o: OpenStateOptions & { create: true }): Promise<SharedState>;
export async function openState(o: OpenStateOptions): Promise<SharedState | undefined>;
export async function openState(o: OpenStateOptions): Promise<SharedState | undefined> {
  if (o.store !== undefined && o.store !== '') {
    // Wired to the Redis backends as they land (issue 15); until then a store URL is refused.
    throw new FlashcardsError(
      'usage',
      `--store ${o.store.replace(/\/\/[^@/]*@/, '//***@')}: not available yet`,
    );
  }
  const file = dataPaths(o.home).stateDb;
  if (!o.create && !existsSync(file)) return undefined;
  const [{ openDatabase }, { sqliteState }] = await Promise.all([
    import('../db/open.ts'),
    import('./sqlite-state.ts'),
  ]);
  const db = openDatabase(file);
  try {
    return sqliteState(db, file, o.clock);
  } catch (e) {
    db.close();
    throw e;
  }
}
