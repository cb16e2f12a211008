import type { Clock } from '../core/clock.ts';
import { formatDuration } from '../core/duration.ts';
import { FlashcardsError } from '../core/errors.ts';
import type { BucketCost, Charge } from './gcra.ts';
import type { KeyState } from './key-state.ts';
import { type BucketPlan, pickShards } from './layout.ts';
import type { RateMeter } from './meter.ts';
import type { Probe } from './probe.ts';
import type { LimiterStore } from './store.ts';

export type Reservation =
  | {
      ok: true;
      delayMs: number;
      /** When the request is booked to go, in the store's time: its booking time plus `delayMs`. */
      sendAt: number;
      /** The request was answered: unused estimated tokens go back, more than estimated is charged. */
      settle(actualTokens: number): Promise<void>;
      /** The request was never sent or spent nothing (a 429): the booking is given back. */
      cancel(): Promise<void>;
    }
  | {
      ok: false;
      delayMs: number;
      reason: 'max_wait' | 'paused';
      message: string;
      /** Resolves when asking again before `delayMs` is worth it (the probe's answer came in). */
      wake?: Promise<void>;
    };

/**
 * Books requests for one limiter instance: one store operation a request (refunds ride along),
 * the first-request probe while a key has no buckets, refusals that say what holds them.
 */
export class Booker {
  readonly #store: LimiterStore;
  readonly #key: string;
  readonly #clock: Clock;
  readonly #state: KeyState;
  readonly #probe: Probe;
  /** Requests this instance admitted (for the AIMD decrease). */
  readonly #admitted: RateMeter;
  /**
   * Unused estimated tokens of settled requests, in TAT ms by TPM shard, given back in the next
   * booking's operation rather than in one of their own (one store operation a request instead of
   * two). A refund held back only makes the bucket look fuller than it is, never emptier.
   */
  readonly #refunds = new Map<number, number>();

  constructor(o: {
    store: LimiterStore;
    key: string;
    clock: Clock;
    state: KeyState;
    probe: Probe;
    admitted: RateMeter;
  }) {
    this.#store = o.store;
    this.#key = o.key;
    this.#clock = o.clock;
    this.#state = o.state;
    this.#probe = o.probe;
    this.#admitted = o.admitted;
  }

  async reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Promise<Reservation> {
    if (this.#state.stale(this.#clock.now())) await this.#state.refresh();
    const plan = this.#state.plan;
    const tokens = Number.isFinite(req.tokens) && req.tokens > 0 ? req.tokens : 0;
    if (plan.tpm !== null && tokens > plan.tpm.shardBurst) throw this.#tooLarge(tokens, plan.tpm);
    if (plan.rpm === null && plan.tpm === null) return this.#reserveUnlimited(opts.maxWaitMs);

    const buckets: BucketCost[] = [];
    if (plan.rpm !== null) buckets.push({ kind: 'rpm', costMs: plan.rpm.intervalMs, tauMs: plan.rpm.tauMs });
    if (plan.tpm !== null) {
      buckets.push({ kind: 'tpm', costMs: tokens * plan.tpm.intervalMs, tauMs: plan.tpm.tauMs });
    }
    const refunds = [...this.#refunds].map(([shard, ms]) => ({ kind: 'tpm' as const, shard, ms }));
    this.#refunds.clear();
    const booking = await this.#store.book(this.#key, {
      shards: pickShards(req.jobId, plan.shards),
      buckets,
      maxWaitMs: opts.maxWaitMs,
      refunds,
    });
    if (!booking.ok) {
      return this.#refusal(booking.now, booking.delayMs, opts.maxWaitMs, booking.pausedBy);
    }
    const sendAt = booking.now + booking.delayMs;
    this.#admitted.record(sendAt);
    let done = false;
    const tpm = booking.charges.find((c) => c.kind === 'tpm');
    return {
      ok: true,
      delayMs: booking.delayMs,
      sendAt,
      settle: async (actualTokens) => {
        if (done) return;
        done = true;
        if (plan.tpm === null || tpm === undefined) return;
        const actual = Number.isFinite(actualTokens) && actualTokens > 0 ? actualTokens : 0;
        const deltaMs = (actual - tokens) * plan.tpm.intervalMs;
        // Unused tokens go back only to a provider that counts by use: one that booked the whole
        // max_tokens keeps them, and a refund would send more than it admits (429s).
        if (deltaMs < 0 && this.#state.row.token_accounting !== 'usage') return;
        if (deltaMs < 0) this.#refunds.set(tpm.shard, (this.#refunds.get(tpm.shard) ?? 0) - deltaMs);
        // More than estimated is charged at once: other processes must see it before they book.
        else if (deltaMs > 0) await this.#store.charge(this.#key, 'tpm', tpm.shard, deltaMs);
      },
      cancel: async () => {
        if (done) return;
        done = true;
        const given: Charge[] = booking.charges.filter((c) => c.costMs > 0);
        await this.#store.cancel(this.#key, given);
      },
    };
  }

  /** No buckets: only the shared pause and the first-request probe hold a request. */
  #reserveUnlimited(maxWaitMs: number): Reservation {
    const now = this.#clock.now();
    const row = this.#state.row;
    const delayMs = Math.max(0, row.paused_until - now);
    if (delayMs > maxWaitMs)
      return this.#refusal(now, delayMs, maxWaitMs, row.pause_reason ?? 'rate limited');
    const turn = this.#probe.turn(now, row.observed_at !== null);
    if (!turn.go) {
      return {
        ok: false,
        delayMs: turn.delayMs,
        reason: 'paused',
        message: `waiting for the first response from ${this.#key} to learn its rate limits`,
        wake: turn.wake,
      };
    }
    this.#admitted.record(now + delayMs);
    const release = async (): Promise<void> => turn.release();
    return { ok: true, delayMs, sendAt: now + delayMs, settle: release, cancel: release };
  }

  /** `pausedBy` is the pause reason when the shared pause, not the buckets, is what holds the request. */
  #refusal(nowMs: number, delayMs: number, maxWaitMs: number, pausedBy: string | null): Reservation {
    const wait = `${formatDuration(delayMs)} is more than the ${formatDuration(maxWaitMs)} allowed`;
    if (pausedBy !== null) {
      const until = new Date(nowMs + delayMs).toISOString();
      return {
        ok: false,
        delayMs,
        reason: 'paused',
        message: `${this.#key} is paused until ${until} (${pausedBy}); ${wait}`,
      };
    }
    const { rpm, tpm } = this.#state.plan;
    const limits = [rpm ? `${round(rpm.rate)} requests/min` : '', tpm ? `${round(tpm.rate)} tokens/min` : '']
      .filter(Boolean)
      .join(', ');
    return {
      ok: false,
      delayMs,
      reason: 'max_wait',
      message: `the rate limit for ${this.#key} (${limits}) has no room for this request yet; ${wait}`,
    };
  }

  #tooLarge(tokens: number, tpm: BucketPlan): FlashcardsError {
    return new FlashcardsError(
      'config',
      `request needs ~${Math.ceil(tokens)} tokens but the TPM shard burst is ${Math.floor(tpm.shardBurst)}; ` +
        'raise limiter.tpm or burst, or lower max_tokens',
      {
        hint:
          `${this.#key}: ${round(tpm.rate)} tokens/min, burst ${Math.floor(tpm.burst)} over ${tpm.shards} shard(s); ` +
          'a request larger than one shard could never be sent, so it is refused instead of waiting forever',
      },
    );
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
