/**
 * Identical requests in flight in one process share one upstream call. Only in-flight calls are
 * shared: once the call settles the key is free again (the response cache serves later ones).
 */
export class SingleFlight {
  readonly #inflight = new Map<string, Promise<unknown>>();

  /** Runs `fn` unless a call for `key` is already running; every caller gets its outcome, rejection included. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key);
    if (running) return running as Promise<T>;
    // Starting fn a microtask later turns a synchronous throw into a rejection and guarantees the
    // promise is registered before `finally` can remove it.
    const call = Promise.resolve()
      .then(fn)
      .finally(() => {
        this.#inflight.delete(key);
      });
    this.#inflight.set(key, call);
    return call;
  }

  /** Keys with a call in flight. */
  get size(): number {
    return this.#inflight.size;
  }
}
