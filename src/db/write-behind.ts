import { type Clock, systemClock } from '../core/clock.ts';
import type { Db } from './open.ts';

const MAX_QUEUE = 256;

/**
 * How long answers wait to be committed, in state.db and cache.db alike: a crash loses at most
 * this much finished work (besides the requests in flight), and a run at a thousand answers a
 * second makes ~50 commits a second per file instead of one per event-loop turn.
 */
export const GROUP_COMMIT_MS = 20;

export interface WriteBehindOptions {
  /** 0 (the default): commit on the next `setImmediate`, a turn of the event loop rather than a time. */
  delayMs?: number;
  /** Times the group commit (the default is the system clock); a FakeClock commits on `advance`. */
  clock?: Clock;
  afterFlush?: () => void;
}

/**
 * Groups writes into one transaction committed at most `delayMs` after the first of them (or on
 * the next `setImmediate` when 0). Under load this turns a thousand commits a second into a few
 * dozen, while a crash can lose only the last `delayMs` of writes.
 */
export class WriteBehind<T> {
  readonly #db: Db;
  readonly #write: (item: T) => void;
  readonly #afterFlush: (() => void) | undefined;
  readonly #clock: Clock;
  #queue: T[] = [];
  readonly #delayMs: number;
  /** Cancels the scheduled commit; set while one is scheduled. */
  #cancel: (() => void) | undefined;
  #error: unknown;

  constructor(db: Db, write: (item: T) => void, options: WriteBehindOptions = {}) {
    this.#db = db;
    this.#delayMs = options.delayMs ?? 0;
    this.#clock = options.clock ?? systemClock;
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
    if (this.#cancel) return;
    const run = (): void => {
      try {
        this.flush();
      } catch (e) {
        // Surfaces on the next add() or flush(), in the caller's context, not as an uncaught error.
        this.#error = e;
      }
    };
    if (this.#delayMs > 0) {
      // On the injected clock: a FakeClock commits on advance(), so tests can tell exactly when.
      this.#cancel = this.#clock.timer(this.#delayMs, run);
    } else {
      const immediate = setImmediate(run);
      this.#cancel = () => clearImmediate(immediate);
    }
  }

  /** Writes everything queued now, in one transaction. */
  flush(): void {
    this.#throwPending();
    this.#cancel?.();
    this.#cancel = undefined;
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
