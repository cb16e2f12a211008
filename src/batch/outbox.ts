import { existsSync } from 'node:fs';
import { type Db, openDatabase } from '../db/open.ts';
import { isStoreUnavailable, type StoreHealth } from '../store/health.ts';
import type { BatchCounts, BatchResults, FinishedItem, ItemFailure, JobOutcome, JobTotals } from './store.ts';

/**
 * The outbox: job outcomes a run could not hand to a shared store that stopped answering. An
 * answer already paid for must outlive the outage and even the run, so each one that meets the
 * store away is written to outbox.db in the data directory (one small SQLite file, committed
 * before the call returns), and written through to the store as soon as it answers: before the
 * next outcome, when the store comes back, before any read (counts, results, the deck), and by
 * the next run on its way in when this one gave up.
 *
 * Entries carry the store they belong to and its epoch: an entry for a store that has since lost
 * its state has nowhere to go (its batch is gone, and the run that starts over redoes the item),
 * and is dropped when the next run opens that store.
 */

export interface OutboxOptions {
  /** outbox.db in the data directory; created with the first entry kept. */
  file: string;
  /** The store's identity (URL without password, and prefix). */
  storeId: string;
  /** The store's epoch as this run found it. */
  epoch: string;
  health: StoreHealth;
}

type Entry =
  | { kind: 'complete'; outcome: JobOutcome; result: unknown; last: boolean }
  | { kind: 'fail'; outcome: JobOutcome; errorKind: string; error: string };

interface Row {
  id: number;
  entry: string;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  store TEXT NOT NULL,
  epoch TEXT NOT NULL,
  entry TEXT NOT NULL
)`;

/** BatchResults whose outcomes survive the store's absence (see above); reads write them through first. */
export class OutboxResults implements BatchResults {
  readonly #inner: BatchResults;
  readonly #o: OutboxOptions;
  #db: Db | undefined;
  /** One write-through at a time in this process (another process on the same outbox.db may send
   * the same entry too: the outcome scripts count a repeated outcome once). */
  #draining: Promise<void> | undefined;

  constructor(inner: BatchResults, o: OutboxOptions) {
    this.#inner = inner;
    this.#o = o;
    if (existsSync(o.file)) {
      const db = this.#open();
      // Entries of this store from before it lost its state have nowhere to go.
      db.prepare('DELETE FROM outbox WHERE store = ? AND epoch <> ?').run(o.storeId, o.epoch);
    }
    o.health.onChange((change) => {
      if (change === 'back') this.#drain().catch(() => {});
    });
  }

  /**
   * Outcomes kept here for this store, waiting for it: counted in the file, since other processes
   * of this data directory keep and send entries in it too.
   */
  get pending(): number {
    return this.#db ? this.#count() : 0;
  }

  async completeJob(outcome: JobOutcome, result: unknown, lastStage: boolean): Promise<void> {
    await this.#deliver({ kind: 'complete', outcome, result, last: lastStage });
  }

  async failJob(outcome: JobOutcome, errorKind: string, error: string): Promise<void> {
    await this.#deliver({ kind: 'fail', outcome, errorKind, error });
  }

  /** Writes through what it can; what the store cannot take yet stays safe on disk. */
  async flush(): Promise<void> {
    try {
      await this.#writeThrough();
      await this.#inner.flush();
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
    }
  }

  async results(batchId: string, idx: number): Promise<Record<string, unknown>> {
    await this.#writeThrough();
    return this.#inner.results(batchId, idx);
  }

  async counts(batchId: string): Promise<BatchCounts> {
    await this.#writeThrough();
    return this.#inner.counts(batchId);
  }

  async totals(batchId: string): Promise<JobTotals> {
    await this.#writeThrough();
    return this.#inner.totals(batchId);
  }

  async failures(batchId: string, limit: number): Promise<ItemFailure[]> {
    await this.#writeThrough();
    return this.#inner.failures(batchId, limit);
  }

  async requeueFailed(batchId: string): Promise<number> {
    await this.#writeThrough();
    return this.#inner.requeueFailed(batchId);
  }

  async *finishedItems(batchId: string, fromIdx?: number): AsyncIterable<FinishedItem> {
    await this.#writeThrough();
    yield* this.#inner.finishedItems(batchId, fromIdx);
  }

  async *unfinishedItems(batchId: string, options: { failed: boolean }): AsyncIterable<FinishedItem> {
    await this.#writeThrough();
    yield* this.#inner.unfinishedItems(batchId, options);
  }

  /** Closes outbox.db; what is still in it waits for the next run. */
  close(): void {
    this.#db?.close();
    this.#db = undefined;
  }

  async #deliver(entry: Entry): Promise<void> {
    if (this.pending > 0 && !this.#o.health.away) await this.#drain().catch(() => {});
    if (this.pending === 0 && !this.#o.health.away) {
      try {
        await this.#send(entry);
        return;
      } catch (e) {
        if (!isStoreUnavailable(e)) throw e;
      }
    }
    this.#keep(entry);
  }

  /** Sends every kept entry, oldest first; throws the store's error when it still does not answer. */
  async #writeThrough(): Promise<void> {
    if (this.pending === 0) return;
    await this.#drain();
  }

  #drain(): Promise<void> {
    this.#draining ??= this.#sendKept().finally(() => {
      this.#draining = undefined;
    });
    return this.#draining;
  }

  async #sendKept(): Promise<void> {
    const db = this.#db;
    if (!db) return;
    const rows = db
      .prepare('SELECT id, entry FROM outbox WHERE store = ? ORDER BY id')
      .all(this.#o.storeId) as Row[];
    const remove = db.prepare('DELETE FROM outbox WHERE id = ?');
    for (const row of rows) {
      // The outcome scripts are fenced and idempotent for their lease token: an entry whose first
      // try reached the store after all (a reply that timed out) is not counted twice.
      await this.#send(JSON.parse(row.entry) as Entry);
      // Deleted after it is sent: a crash in between sends it again, which counts once.
      remove.run(row.id);
    }
  }

  async #send(entry: Entry): Promise<void> {
    if (entry.kind === 'complete') await this.#inner.completeJob(entry.outcome, entry.result, entry.last);
    else await this.#inner.failJob(entry.outcome, entry.errorKind, entry.error);
  }

  #keep(entry: Entry): void {
    this.#open()
      .prepare('INSERT INTO outbox (store, epoch, entry) VALUES (?, ?, ?)')
      .run(this.#o.storeId, this.#o.epoch, JSON.stringify(entry));
  }

  #count(): number {
    const row = this.#open()
      .prepare('SELECT count(*) AS n FROM outbox WHERE store = ?')
      .get(this.#o.storeId) as {
      n: number;
    };
    return row.n;
  }

  #open(): Db {
    if (!this.#db) {
      this.#db = openDatabase(this.#o.file);
      this.#db.exec(SCHEMA);
    }
    return this.#db;
  }
}
