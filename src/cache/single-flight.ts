/**
 * Identical requests in flight in one process share one upstream call. Only in-flight calls are
 * shared: once the call settles the key is free again (the response cache serves later ones).
 */
export class SingleFlight {
  readonly #inflight = new Map<string, Promise<unknown>>();

  /** Runs `fn` unless a call for `key` is already running; every caller gets its outcome, rejection included. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.join(key, fn).then((r) => r.value);
  }

  /**
   * Like `run`, and says whether the outcome was another caller's (`shared`): what a call cost
   * (tokens, requests) belongs to the caller that made it, not to every caller that waited for it.
   */
  join<T>(key: string, fn: () => Promise<T>): Promise<{ value: T; shared: boolean }> {
    const running = this.#inflight.get(key);
    if (running) return (running as Promise<T>).then((value) => ({ value, shared: true }));
    // Starting fn a microtask later turns a synchronous throw into a rejection and guarantees the
    // promise is registered before `finally` can remove it.
    const call = Promise.resolve()
      .then(fn)
      .finally(() => {
        this.#inflight.delete(key);
      });
    this.#inflight.set(key, call);
    return call.then((value) => ({ value, shared: false }));
  }

  /** Keys with a call in flight. */
  get size(): number {
    return this.#inflight.size;
  }
}
