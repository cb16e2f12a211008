import type { Db } from './open.ts';

const MAX_QUEUE = 256;

/**
 * How long answers wait to be committed, in state.db and cache.db alike: a crash loses at most
 * this much finished work (besides the requests in flight), and a run at a thousand answers a
 * second makes ~50 commits a second per file instead of one per event-loop turn.
 */
export const GROUP_COMMIT_MS = 20;

/**
 * Groups writes into one transaction committed at most `delayMs` after the first of them (or on
 * the next `setImmediate` when 0). Under load this turns a thousand commits a second into a few
 * dozen, while a crash can lose only the last `delayMs` of writes.
 */
export class WriteBehind<T> {
  readonly #db: Db;
  readonly #write: (item: T) => void;
  readonly #afterFlush: (() => void) | undefined;
  #queue: T[] = [];
  readonly #delayMs: number;
  #scheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #error: unknown;

  constructor(db: Db, write: (item: T) => void, options: { delayMs?: number; afterFlush?: () => void } = {}) {
    this.#db = db;
    this.#delayMs = options.delayMs ?? 0;
    this.#write = write;
    this.#afterFlush = options.afterFlush;
  }

  add(item: T): void {
    this.#queue.push(item);
    this.#throwPending();
    // A run answered from the cache can go a long while without yielding to timers: bound the queue.
    if (this.#queue.length >= MAX_QUEUE) {
      this.flush();
      return;
    }
    if (this.#scheduled) return;
    const run = (): void => {
      try {
        this.flush();
      } catch (e) {
        // Surfaces on the next add() or flush(), in the caller's context, not as an uncaught error.
        this.#error = e;
      }
    };
    this.#scheduled = this.#delayMs > 0 ? setTimeout(run, this.#delayMs) : setImmediate(run);
  }

  /** Writes everything queued now, in one transaction. */
  flush(): void {
    this.#throwPending();
    if (this.#scheduled) {
      clearTimeout(this.#scheduled as NodeJS.Timeout);
      clearImmediate(this.#scheduled as NodeJS.Immediate);
    }
    this.#scheduled = undefined;
    if (this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    try {
      this.#db.transaction(() => {
        for (const item of queue) this.#write(item);
      })();
    } catch (e) {
      // Keep the writes for the next flush: a busy or full disk must not silently drop results.
      this.#queue = queue.concat(this.#queue);
      throw e;
    }
    this.#afterFlush?.();
  }

  #throwPending(): void {
    if (this.#error === undefined) return;
    const e = this.#error;
    this.#error = undefined;
    throw e;
  }
}
