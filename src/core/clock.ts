/** Time as a dependency: policies never read Date.now() or call setTimeout directly. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Resolves after `ms`; rejects with the signal's reason when aborted. A pending sleep keeps the
   * process alive (the run is waiting on it); stopping a run aborts its sleeps through the signal.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fn` after `ms`, and every `ms` after that when `repeat` is set, until the returned
   * function cancels it. Background work (heartbeats, group commits, deadlines): a pending timer
   * never keeps a finished process alive.
   */
  timer(ms: number, fn: () => void, options?: { repeat?: boolean }): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms, signal) {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  },
  timer(ms, fn, options) {
    if (options?.repeat) {
      const interval = setInterval(fn, Math.max(1, ms));
      interval.unref();
      return () => clearInterval(interval);
    }
    const timeout = setTimeout(fn, Math.max(0, ms));
    timeout.unref();
    return () => clearTimeout(timeout);
  },
};

/**
 * A clock that only moves when told to. Sleepers wake in deadline order as time advances,
 * so hours of policy behaviour run in milliseconds with exact assertions.
 */
export class FakeClock implements Clock {
  #now: number;
  /** Sleeps and timers, woken in deadline order; a repeating timer goes back in after each call. */
  #sleepers: { at: number; seq: number; resolve: () => void; every?: number }[] = [];
  #seq = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const sleeper = { at: this.#now + ms, seq: this.#seq++, resolve };
      this.#sleepers.push(sleeper);
      signal?.addEventListener(
        'abort',
        () => {
          this.#sleepers = this.#sleepers.filter((s) => s !== sleeper);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  timer(ms: number, fn: () => void, options?: { repeat?: boolean }): () => void {
    const every = options?.repeat ? Math.max(1, ms) : undefined;
    const entry = { at: this.#now + Math.max(0, ms), seq: this.#seq++, resolve: fn, every };
    this.#sleepers.push(entry);
    return () => {
      entry.every = undefined;
      this.#sleepers = this.#sleepers.filter((s) => s !== entry);
    };
  }

  /** Number of pending sleepers and timers (useful to wait until the code under test has gone to sleep). */
  get pending(): number {
    return this.#sleepers.length;
  }

  /** Moves time forward by `ms`, waking every sleeper whose deadline passes, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      this.#sleepers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#sleepers[0];
      if (!next || next.at > target) break;
      this.#sleepers.shift();
      this.#now = next.at;
      if (next.every !== undefined) {
        // The same entry goes back in, so the cancel function returned by timer() still finds it.
        next.at += next.every;
        next.seq = this.#seq++;
        this.#sleepers.push(next);
      }
      next.resolve();
      // Let the woken code run (and perhaps sleep again) before moving on.
      await new Promise<void>((r) => setImmediate(r));
    }
    this.#now = target;
  }
}
