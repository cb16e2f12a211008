import type { Clock } from '../core/clock.ts';
import { planFor } from './after-429.ts';
import { type Plan, samePlan } from './layout.ts';
import type { EffectiveRates } from './learn.ts';
import { defaultRow, type KeyRow } from './schema.ts';
import type { LimiterSettings } from './settings.ts';
import type { LimiterStore } from './store.ts';

/** Learned limits and the pause are re-read at most this often; bookings always go to the store. */
export const refreshMs = 150;
/**
 * The stored layout is only for `limiter status`. While AIMD grows the rate (5% a second) it
 * drifts past 1% every 200 ms; rewriting it that often was a state.db write a refresh, so a
 * drift is written at most this often. A lower rate or a new bucket is written at once: status
 * must never show more than the limiter admits.
 */
export const layoutEveryMs = 5000;

/**
 * One limiter instance's cached view of its key: the stored row, the effective rates and the
 * buckets they give. Booking and learning both read it and hand it every row the store returns.
 */
export class KeyState {
  readonly #store: LimiterStore;
  readonly #key: string;
  readonly #settings: LimiterSettings;
  readonly #clock: Clock;
  row: KeyRow;
  rates: EffectiveRates = { rpm: null, tpm: null, learned: false };
  plan: Plan = { rpm: null, tpm: null, shards: 1 };
  #readAt = Number.NEGATIVE_INFINITY;
  #layoutAt = Number.NEGATIVE_INFINITY;

  constructor(store: LimiterStore, key: string, settings: LimiterSettings, clock: Clock) {
    this.#store = store;
    this.#key = key;
    this.#settings = settings;
    this.#clock = clock;
    this.row = defaultRow(key);
  }

  /** True when the cached row is older than `refreshMs` (or was never read). */
  stale(nowMs: number): boolean {
    return nowMs - this.#readAt >= refreshMs;
  }

  /** Re-reads the row when stale; concurrent callers do not read it twice. */
  async refresh(): Promise<void> {
    const now = this.#clock.now();
    if (!this.stale(now)) return;
    this.#readAt = now;
    await this.adopt((await this.#store.readKey(this.#key)) ?? defaultRow(this.#key));
  }

  /** Takes a row the store just returned (as fresh as a re-read), and rewrites the layout when due. */
  async adopt(row: KeyRow): Promise<void> {
    const now = this.#clock.now();
    this.#readAt = now;
    this.#use(row, now);
    const change = this.#layoutChange();
    if (change === 'urgent' || (change === 'drift' && now - this.#layoutAt >= layoutEveryMs)) {
      this.#layoutAt = now;
      const { rpm, tpm, shards } = this.plan;
      this.#use(
        await this.#store.writeLayout(this.#key, {
          shards,
          rpm: rpm?.rate ?? null,
          rpmBurst: rpm?.burst ?? null,
          tpm: tpm?.rate ?? null,
          tpmBurst: tpm?.burst ?? null,
          configuredRpm: this.#settings.rpm ?? null,
          configuredTpm: this.#settings.tpm ?? null,
          maxRequestTokens: this.#settings.maxRequestTokens,
        }),
        now,
      );
    }
  }

  #use(row: KeyRow, now: number): void {
    this.row = row;
    const { rates, plan } = planFor(row, this.#settings, now);
    this.rates = rates;
    // The same plan object while nothing changed, so a reservation's plan compares by identity.
    if (!samePlan(plan, this.plan)) this.plan = plan;
  }

  /**
   * How the stored layout differs from ours. 'urgent' when status would show more than is
   * admitted: nothing stored yet, a bucket we pace by missing, or a stored rate above ours by more
   * than 1%. 'drift' for any other difference (a rate up by more than 1%, the shard count, the
   * configured values, the largest request): written at most every `layoutEveryMs`, which also bounds the rewrites
   * when processes with different settings share a key.
   */
  #layoutChange(): 'none' | 'drift' | 'urgent' {
    const { row, plan } = this;
    const settings = this.#settings;
    const buckets = [
      [row.rpm, plan.rpm?.rate ?? null],
      [row.tpm, plan.tpm?.rate ?? null],
    ] as const;
    if (row.updated_at === 0) return 'urgent';
    for (const [stored, ours] of buckets) {
      if (ours !== null && (stored === null || stored > ours * 1.01)) return 'urgent';
    }
    const off = (stored: number | null, current: number | null): boolean =>
      (stored === null) !== (current === null) ||
      (stored !== null && current !== null && Math.abs(stored - current) > current * 0.01);
    const differs =
      buckets.some(([stored, ours]) => off(stored, ours)) ||
      row.shards !== plan.shards ||
      off(row.configured_rpm, settings.rpm ?? null) ||
      off(row.configured_tpm, settings.tpm ?? null) ||
      row.max_request_tokens !== settings.maxRequestTokens;
    return differs ? 'drift' : 'none';
  }
}
