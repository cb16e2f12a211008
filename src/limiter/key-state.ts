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

  /** Re-reads the row when stale (or when `force`d); concurrent callers do not read it twice. */
  async refresh(force = false): Promise<void> {
    const now = this.#clock.now();
    if (!force && !this.stale(now)) return;
    this.#readAt = now;
    await this.adopt((await this.#store.readKey(this.#key)) ?? defaultRow(this.#key));
  }

  /** Takes a row the store just returned (as fresh as a re-read), and rewrites the layout when stale. */
  async adopt(row: KeyRow): Promise<void> {
    const now = this.#clock.now();
    this.#readAt = now;
    this.#use(row, now);
    if (this.#layoutStale()) {
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

  /** The stored layout is only for `limiter status`; rewrite it when it drifts by more than 1%. */
  #layoutStale(): boolean {
    const { row, plan } = this;
    const settings = this.#settings;
    const off = (stored: number | null, current: number | null): boolean =>
      (stored === null) !== (current === null) ||
      (stored !== null && current !== null && Math.abs(stored - current) > current * 0.01);
    return (
      row.updated_at === 0 ||
      row.shards !== plan.shards ||
      off(row.rpm, plan.rpm?.rate ?? null) ||
      off(row.tpm, plan.tpm?.rate ?? null) ||
      off(row.configured_rpm, settings.rpm ?? null) ||
      off(row.configured_tpm, settings.tpm ?? null)
    );
  }
}
