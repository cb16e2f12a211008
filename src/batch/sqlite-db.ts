import type { Clock } from '../core/clock.ts';
import type { Db } from '../db/open.ts';
import { GROUP_COMMIT_MS, WriteBehind } from '../db/write-behind.ts';
import { migrateBatches } from './sqlite-schema.ts';

/**
 * The state.db connection the three SQLite batch stores share: its clock and the queue of job
 * outcomes waiting for their group commit. Creating it applies the batch migrations.
 */
export class SqliteBatchDb {
  readonly db: Db;
  readonly clock: Clock;
  /** Job outcomes are committed together, at most GROUP_COMMIT_MS after the first (see WriteBehind). */
  readonly #writes: WriteBehind<() => void>;

  constructor(db: Db, clock: Clock) {
    migrateBatches(db);
    this.db = db;
    this.clock = clock;
    this.#writes = new WriteBehind<() => void>(db, (write) => write(), { delayMs: GROUP_COMMIT_MS, clock });
  }

  /** Queues a write for the next group commit (it runs inside that commit's transaction). */
  queue(write: () => void): void {
    this.#writes.add(write);
  }

  /** Commits the queued writes now. */
  flush(): void {
    this.#writes.flush();
  }

  /**
   * Flush-before-read, in one place: runs `op` once the queued outcomes are committed, so a read
   * sees them and a write (a status change, a release, a requeue) lands after them. Every read of
   * the batch stores goes through here; claims and heartbeats do not need to (an item whose
   * outcome waits in the queue is still leased by this process).
   */
  afterQueued<T>(op: () => T): T {
    this.#writes.flush();
    return op();
  }
}
