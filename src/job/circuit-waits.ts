/**
 * How long a run as a whole has waited on an open circuit: one wait begins when a job first finds
 * the circuit open, and ends when a call gets through again, however many jobs waited meanwhile.
 * `--max-wait` bounds the sum over the run, so a provider that keeps failing (the circuit opening
 * again after each probe, with ever longer breaks) ends the run instead of holding it for hours.
 */
export class CircuitWaits {
  #since: number | undefined;
  #pastMs = 0;

  /** A job found the circuit open; true when this starts a new wait (the log says so once). */
  waiting(nowMs: number): boolean {
    if (this.#since !== undefined) return false;
    this.#since = nowMs;
    return true;
  }

  /** A call got through; the length of the wait that ends here, if one was going on. */
  resumed(nowMs: number): number | undefined {
    if (this.#since === undefined) return undefined;
    const waited = Math.max(0, nowMs - this.#since);
    this.#pastMs += waited;
    this.#since = undefined;
    return waited;
  }

  /** Time waited on open circuits in this run so far, the current wait included. */
  totalMs(nowMs: number): number {
    return this.#pastMs + (this.#since === undefined ? 0 : Math.max(0, nowMs - this.#since));
  }
}
