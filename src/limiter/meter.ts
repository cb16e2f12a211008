const slotMs = 500;
const slots = 10;

/**
 * Requests this process admitted over the last few seconds, in fixed 500 ms slots (constant
 * memory, O(1) per record). Feeds the multiplicative decrease when a provider with unknown
 * limits answers 429 without telling us its limits.
 */
export class RateMeter {
  readonly #counts = new Float64Array(slots);
  readonly #slotIds = new Float64Array(slots).fill(-1);
  #firstAt: number | undefined;

  record(nowMs: number, count = 1): void {
    this.#firstAt ??= nowMs;
    const id = Math.floor(nowMs / slotMs);
    const i = id % slots;
    if (this.#slotIds[i] !== id) {
      this.#slotIds[i] = id;
      this.#counts[i] = 0;
    }
    this.#counts[i] = (this.#counts[i] ?? 0) + count;
  }

  /** When the first event was recorded; undefined before any. */
  get since(): number | undefined {
    return this.#firstAt;
  }

  /** Admitted per minute over the window (at least one second, so a single burst is not read as a huge rate). */
  perMinute(nowMs: number): number {
    if (this.#firstAt === undefined) return 0;
    const id = Math.floor(nowMs / slotMs);
    let total = 0;
    for (let i = 0; i < slots; i++) {
      const slotId = this.#slotIds[i] ?? -1;
      if (slotId > id - slots && slotId <= id) total += this.#counts[i] ?? 0;
    }
    const covered = Math.min(slots * slotMs, Math.max(1000, nowMs - this.#firstAt));
    return (total * 60_000) / covered;
  }
}
