import type { Clock } from '../core/clock.ts';
import type { Db } from '../db/open.ts';
import { SqliteBatchCatalog } from './sqlite-catalog.ts';
import { SqliteBatchDb } from './sqlite-db.ts';
import { SqliteBatchResults } from './sqlite-results.ts';
import { SqliteWorkQueue } from './sqlite-work-queue.ts';
import type { BatchStores } from './store.ts';

/**
 * The batch catalog, work queue and results on one state.db connection (migrated on the way), time
 * from `clock`. They share the queue of job outcomes awaiting their group commit, so a read through
 * any of them sees what the others queued. Synchronous underneath: every promise they return is
 * already settled. The caller owns `db`; `results.flush()` before closing it commits the last outcomes.
 */
export function openSqliteBatchStores(db: Db, clock: Clock): BatchStores {
  const shared = new SqliteBatchDb(db, clock);
  return {
    catalog: new SqliteBatchCatalog(shared),
    queue: new SqliteWorkQueue(shared),
    results: new SqliteBatchResults(shared),
  };
}
