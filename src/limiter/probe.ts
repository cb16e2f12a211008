/** With nothing known about a provider, one request goes first so its headers can set the pace. */
export const probeTimeoutMs = 5000;
/** Held requests are woken by the probe's answer; asking again this often is only the fallback. */
export const probePollMs = 250;

export type ProbeTurn =
  | { go: true; release: () => void }
  | { go: false; delayMs: number; wake: Promise<void> };

/**
 * The first-request probe of one limiter instance: while a key has no buckets and no response has
 * ever been seen for it, one request at a time goes out (for at most `probeTimeoutMs`); the others
 * wait until it is answered or given back.
 */
export class Probe {
  /** True once this instance saw any response. */
  #observed = false;
  #out: number | null = null;
  #seq = 0;
  #since: number | undefined;
  /** Wakes the requests held back as soon as the probe is answered or given back. */
  #done: PromiseWithResolvers<void> | null = null;

  /** A request's turn on a key without buckets; `keyObserved` is true when any instance saw a response. */
  turn(nowMs: number, keyObserved: boolean): ProbeTurn {
    const free = { go: true, release: () => {} } as const;
    if (this.#observed || keyObserved) return free;
    this.#since ??= nowMs;
    if (nowMs - this.#since >= probeTimeoutMs) return free;
    if (this.#out !== null) {
      this.#done ??= Promise.withResolvers<void>();
      return { go: false, delayMs: probePollMs, wake: this.#done.promise };
    }
    const id = ++this.#seq;
    this.#out = id;
    return {
      go: true,
      release: () => {
        if (this.#out === id) this.#end();
      },
    };
  }

  /** A response came in: no more probing. Returns true when it is this instance's first. */
  answered(): boolean {
    const first = !this.#observed;
    this.#observed = true;
    this.#end();
    return first;
  }

  #end(): void {
    this.#out = null;
    this.#done?.resolve();
    this.#done = null;
  }
}
