import type { Clock } from '../core/clock.ts';
import { learningByAimd } from './after-429.ts';
import { type Restart, remainingAheadMs } from './gcra.ts';
import type { RateLimitInfo } from './headers.ts';
import type { KeyState } from './key-state.ts';
import { exhaustedUntil, headerLimits, tokenAccounting } from './learn.ts';
import { RateMeter } from './meter.ts';
import type { Probe } from './probe.ts';
import type { LimiterSettings } from './settings.ts';
import type { LimiterStore, RateShare } from './store.ts';

/** A response, as the limiter learns from it. */
export interface Observation {
  status: number;
  /** Its rate-limit headers, as parseRateLimitHeaders read them. */
  info: RateLimitInfo;
  /** For an answered request: what it used and the max_tokens it asked for (how tokens are counted). */
  answer?: { promptTokens: number; totalTokens: number; maxTokens: number } | undefined;
}

/** While learning by AIMD, each instance shares its meters this often (see ratesFreshMs). */
export const publishEveryMs = 500;

/**
 * Learns from every response of one limiter instance: limits from headers, the provider's
 * remaining counts, "remaining 0" pauses, 429 episodes (pause, strikes, AIMD decrease while the
 * rate is unknown) and the meters that decrease starts from. Each step is one store operation
 * whose rules are pure functions (learn.ts, after-429.ts, gcra.ts).
 */
export class Learner {
  readonly #store: LimiterStore;
  readonly #key: string;
  readonly #settings: LimiterSettings;
  readonly #clock: Clock;
  readonly #state: KeyState;
  readonly #probe: Probe;
  readonly #instance: string;
  /** Requests this instance admitted (recorded by the booking), and responses the provider accepted (not 429). */
  readonly #admitted: RateMeter;
  readonly #accepted = new RateMeter();
  #publishedAt = Number.NEGATIVE_INFINITY;

  constructor(o: {
    store: LimiterStore;
    key: string;
    settings: LimiterSettings;
    clock: Clock;
    state: KeyState;
    probe: Probe;
    admitted: RateMeter;
    instance: string;
  }) {
    this.#store = o.store;
    this.#key = o.key;
    this.#settings = o.settings;
    this.#clock = o.clock;
    this.#state = o.state;
    this.#probe = o.probe;
    this.#admitted = o.admitted;
    this.#instance = o.instance;
  }

  async observe(obs: Observation): Promise<void> {
    const { info, status } = obs;
    const state = this.#state;
    const now = this.#clock.now();
    if (state.stale(now)) await state.refresh();
    const first = this.#probe.answered();

    const limits = headerLimits(info);
    if (
      (limits.rpm !== undefined && limits.rpm !== state.row.header_rpm) ||
      (limits.tpm !== undefined && limits.tpm !== state.row.header_tpm)
    ) {
      await state.adopt(
        await this.#store.learnLimits(this.#key, { rpm: limits.rpm ?? null, tpm: limits.tpm ?? null }),
      );
    } else if (first && state.row.observed_at === null) {
      await state.adopt(await this.#store.markObserved(this.#key));
    }
    await this.#syncRemaining(info);
    await this.#learnAccounting(obs);

    if (status === 429) {
      await state.adopt(
        await this.#store.record429(this.#key, { info, settings: this.#settings, share: this.#share(now) }),
      );
    } else {
      if (status < 400) this.#accepted.record(now);
      const exhausted = exhaustedUntil(info, now, this.#settings.maxRequestTokens);
      if (exhausted !== undefined && exhausted.untilMs > state.row.paused_until) {
        await state.adopt(await this.#store.pause(this.#key, exhausted.untilMs - now, exhausted.reason));
      }
      if (status < 400 && state.row.strikes > 0) await state.adopt(await this.#store.clearStrikes(this.#key));
    }
    if (now - this.#publishedAt >= publishEveryMs && learningByAimd(this.#settings.rpm, state.row)) {
      this.#publishedAt = now;
      await this.#store.publishRates(this.#key, this.#share(now));
    }
  }

  /**
   * The provider's `remaining` can only lower what our buckets think is left: it catches requests
   * we never counted (the probe sent before any bucket existed, other clients on the same key).
   * It describes the provider when the request arrived; in a saturated run the refill since then
   * and our sends since then cancel out, and a stale, higher value changes nothing.
   */
  async #syncRemaining(info: RateLimitInfo): Promise<void> {
    const { plan } = this.#state;
    const restarts: Restart[] = [];
    for (const [bucket, remaining] of [
      [plan.rpm, info.remainingRequests],
      [plan.tpm, info.remainingTokens],
    ] as const) {
      if (bucket === null || remaining === undefined) continue;
      const aheadMs = remainingAheadMs(bucket, remaining);
      if (aheadMs !== null) restarts.push({ kind: bucket.kind, shards: bucket.shards, aheadMs });
    }
    if (restarts.length > 0) await this.#store.restart(this.#key, restarts);
  }

  /**
   * How the provider counts tokens, from an answer's headers (learn.ts tokenAccounting). Counting
   * by use is what lets a settled booking give its unused tokens back; until a response shows it,
   * the limiter keeps what it booked, as OpenAI does. A 429 on the token budget puts it back.
   */
  async #learnAccounting(obs: Observation): Promise<void> {
    const row = this.#state.row;
    if (obs.status === 429 && row.token_accounting === 'usage' && obs.info.remainingTokens === 0) {
      await this.#state.adopt(await this.#store.setTokenAccounting(this.#key, null));
      return;
    }
    if (obs.answer === undefined || obs.status >= 400) return;
    const seen = tokenAccounting(obs.info, obs.answer);
    if (seen === undefined || seen === row.token_accounting) return;
    // A request in flight next to others can look booked up front when it is not: only 'usage'
    // overrides what is known; 'upfront' is recorded where nothing was.
    if (seen === 'upfront' && row.token_accounting !== null) return;
    await this.#state.adopt(await this.#store.setTokenAccounting(this.#key, seen));
  }

  /** What this instance admitted and got accepted lately, per minute; each sees only its share of the key. */
  #share(now: number): RateShare {
    const since = Math.min(this.#admitted.since ?? now, this.#accepted.since ?? now);
    return {
      instance: this.#instance,
      accepted: this.#accepted.perMinute(now),
      admitted: this.#admitted.perMinute(now),
      measuringMs: now - since,
    };
  }
}
