import type { Clock } from '../core/clock.ts';
import type { CallEnd, CallObserver } from '../job/ports.ts';

/**
 * How many requests a run keeps in flight, steered while it runs. A rate-limited batch is fastest
 * when the limiter, not the pool, holds it back: by Little's law that takes about rate x latency
 * requests in flight, and both move (a model's latency, a limit learned from headers or lowered
 * after 429s). The controller follows them:
 *
 * - **Rate known** (told, learned from headers, or set by AIMD): the target is the rate this run
 *   gets times a high percentile of the call latency, with headroom. "The rate this run gets" is
 *   the limiter's whole rate while the limiter lets every request straight through, and the run's
 *   own measured throughput while the limiter holds requests back: that is how several processes
 *   on one key each size their pool to their share instead of each opening rate x latency. Before
 *   the first answer (latency unknown) the limit doubles every tick while the limiter has budget
 *   and work is waiting, and stops as soon as the limiter holds requests back.
 * - **No rate known** (a local server, a provider that sends no limits): the limit climbs (x1.5)
 *   while each step raises throughput by 15% or more; a step that only raises latency is undone and
 *   the limit rests there (for `plateauMs`). This is the gradient idea of Netflix's
 *   concurrency-limits reduced to what a batch needs: it does not know the server's queue, only
 *   that more in flight stopped paying.
 * - **Errors** (5xx, timeouts, resets; not 429s, which the limiter answers) in a fifth of at
 *   least ten recent calls: multiplicative decrease
 *   (x0.7), and no growth for a while. A failing provider is then not hit harder.
 *
 * `--concurrency N` pins the limit; `--max-concurrency` bounds it, as does the work left.
 */

export interface ConcurrencySettings {
  /** Pinned by --concurrency: the limit never changes. */
  fixed?: number | undefined;
  /** Where an unpinned run starts. */
  initial: number;
  /** --max-concurrency. */
  max: number;
  /** Share of rate x latency kept in flight beyond the estimate (latency varies, answers bunch). */
  headroom?: number;
}

export type ChangeReason = 'budget' | 'throughput' | 'latency' | 'errors' | 'rate';

export interface ConcurrencyChange {
  from: number;
  to: number;
  reason: ChangeReason;
  /** What the decision saw, for the log. */
  detail: string;
}

export interface DecideInput {
  /** Requests per second the limiter allows this key now; null when no limit is known. */
  ratePerSec: number | null;
  /** Work is waiting for a free slot: more in flight would start it at once. */
  waiting: boolean;
  /** Items not finished yet (the limit never grows past them). */
  remaining: number;
}

const latencyWindowMs = 60_000;
/** A booking made to wait at least this long means the limiter, not the pool, is holding the run. */
const heldFromMs = 20;
const latencySamples = 64;
const outcomeWindowMs = 30_000;
const errorShare = 0.2;
const minOutcomes = 10;
const decrease = 0.7;
const climbGain = 1.15;
const plateauMs = 30_000;
/** Latency is read at this percentile for sizing: most calls take less, so few slots sit idle. */
const sizingPercentile = 0.75;

interface Sample {
  at: number;
  ms: number;
}

export class ConcurrencyController implements CallObserver {
  readonly #clock: Clock;
  readonly #fixed: number | undefined;
  readonly #max: number;
  readonly #headroom: number;
  #limit: number;
  #peak: number;
  readonly #latencies: Sample[] = [];
  readonly #outcomes: { at: number; ok: boolean }[] = [];
  /** Completion times since the last change, for the throughput the current limit gives. */
  #completions = 0;
  #changedAt: number;
  /** Until when the limiter holds a booking back (the latest send time it gave a waiting request). */
  #heldUntil = Number.NEGATIVE_INFINITY;
  #held = false;
  #tokens: number | undefined;
  /** Send times of the requests in flight: an unanswered request's age is a lower bound on latency. */
  readonly #inFlight = new Set<{ at: number }>();
  #frozenUntil = Number.NEGATIVE_INFINITY;
  #plateauUntil = Number.NEGATIVE_INFINITY;
  /** A climb being judged: the limit before it and the throughput that limit gave. */
  #climb: { from: number; throughput: number } | undefined;

  constructor(settings: ConcurrencySettings, clock: Clock) {
    this.#clock = clock;
    this.#fixed = settings.fixed;
    this.#max = Math.max(1, settings.max);
    this.#headroom = settings.headroom ?? 1.5;
    this.#limit = Math.min(this.#max, Math.max(1, settings.fixed ?? settings.initial));
    this.#peak = this.#limit;
    this.#changedAt = clock.now();
  }

  get limit(): number {
    return this.#limit;
  }

  get peak(): number {
    return this.#peak;
  }

  /** Requests sent and not answered yet. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  get pinned(): boolean {
    return this.#fixed !== undefined;
  }

  /** A request went out; what it returns is told how the request ended. */
  sent(): (end: CallEnd) => void {
    const sent = { at: this.#clock.now() };
    this.#inFlight.add(sent);
    return (end) => {
      if (!this.#inFlight.delete(sent) || end === 'cancelled') return;
      this.callEnded({ latencyMs: this.#clock.now() - sent.at, ok: end === 'ok' });
    };
  }

  /**
   * A booking: its tokens (for the request rate a token budget allows), and how long the limiter
   * makes it wait (or, refused, asks it to wait before asking again). While any booking is still
   * waiting for its send time, the limiter, not the pool, is what holds the run.
   */
  booked(b: { tokens: number; waitMs: number }): void {
    this.#tokens = this.#tokens === undefined ? b.tokens : this.#tokens * 0.95 + b.tokens * 0.05;
    if (b.waitMs >= heldFromMs) this.#heldUntil = Math.max(this.#heldUntil, this.#clock.now() + b.waitMs);
  }

  /** The tokens a request books, on average (undefined before the first booking). */
  get tokensPerRequest(): number | undefined {
    return this.#tokens;
  }

  /** Records an answered call measured elsewhere (`sent` does this for its own). */
  callEnded(sample: { latencyMs: number; ok: boolean }): void {
    const at = this.#clock.now();
    this.#completions++;
    this.#outcomes.push({ at, ok: sample.ok });
    if (this.#outcomes.length > 64) this.#outcomes.shift();
    if (!sample.ok) return;
    this.#latencies.push({ at, ms: sample.latencyMs });
    if (this.#latencies.length > latencySamples) this.#latencies.shift();
  }

  /** The limiter made a request wait (or refused it for now): it, not the pool, is holding the run. */
  limiterHeld(): void {
    this.#held = true;
  }

  /**
   * The call latency at `p` (0-1): answers of the last minute, and the ages of the requests still
   * out (each at least that slow), so that the first, fastest answers do not pass for the whole
   * distribution. Undefined before any answer.
   */
  latencyMs(p: number): number | undefined {
    const now = this.#clock.now();
    const since = now - latencyWindowMs;
    const recent = this.#latencies.filter((s) => s.at >= since).map((s) => s.ms);
    if (recent.length === 0) return undefined;
    for (const sent of this.#inFlight) recent.push(now - sent.at);
    recent.sort((a, b) => a - b);
    return recent[Math.min(recent.length - 1, Math.floor(p * recent.length))];
  }

  /** How long the oldest request in flight has been out. */
  #oldestAge(now: number): number {
    let oldest = now;
    for (const sent of this.#inFlight) oldest = Math.min(oldest, sent.at);
    return now - oldest;
  }

  /** Looks at what happened since the last call and moves the limit; returns the change, if any. */
  decide(input: DecideInput): ConcurrencyChange | undefined {
    if (this.#fixed !== undefined) return undefined;
    const now = this.#clock.now();
    const held = this.#held || now < this.#heldUntil;
    this.#held = false;
    const p50 = this.latencyMs(0.5);

    const recent = this.#outcomes.filter((o) => o.at >= now - outcomeWindowMs);
    const failed = recent.filter((o) => !o.ok).length;
    if (now >= this.#frozenUntil && recent.length >= minOutcomes && failed / recent.length >= errorShare) {
      // Judge the next decrease on calls made after this one.
      this.#outcomes.length = 0;
      this.#frozenUntil = now + Math.max(2000, 2 * (p50 ?? 1000));
      this.#climb = undefined;
      return this.#set(
        Math.floor(this.#limit * decrease),
        'errors',
        `${failed} of ${recent.length} recent calls failed`,
      );
    }
    if (now < this.#frozenUntil) return undefined;
    return input.ratePerSec === null ? this.#climbing(input, now, held, p50) : this.#sized(input, now, held);
  }

  /** Rate known: rate (or this run's share of it) x latency x headroom. */
  #sized(input: DecideInput, now: number, held: boolean): ConcurrencyChange | undefined {
    const rate = input.ratePerSec ?? 0;
    const latency = this.latencyMs(sizingPercentile);
    if (latency === undefined) {
      // No answer yet, so the latency is at least the age of the first request: size for that
      // (it grows with the wait, never past what the true latency needs), and double meanwhile
      // while the limiter lets requests straight through.
      if (!input.waiting) return undefined;
      const age = this.#oldestAge(now);
      const floor = Math.ceil(rate * (age / 1000) * this.#headroom);
      const to = held ? floor : Math.max(floor, this.#limit * 2);
      return this.#grow(to, input, 'budget', `no answer yet after ${round(age / 1000)} s`);
    }
    const window = Math.max(2000, 2 * latency);
    const measured =
      held && now - this.#changedAt >= window ? (this.#completions * 1000) / (now - this.#changedAt) : 0;
    const share = held && measured > 0 ? Math.min(rate, measured) : rate;
    const target = Math.ceil(share * (latency / 1000) * this.#headroom) + 2;
    const detail = `${round(share * 60)} requests/min x ${round(latency / 1000)} s latency (p75)`;
    if (target > this.#limit && input.waiting) return this.#grow(target, input, 'budget', detail);
    // Shrinks only on this run's measured share: a pool larger than the whole rate needs costs
    // nothing but waiting in the limiter, while one sized on a few early answers starves the run.
    if (measured > 0 && target * 1.5 < this.#limit) {
      return this.#set(target, 'rate', `${detail}; the limiter holds the rest`);
    }
    return undefined;
  }

  /** No rate known: climb while throughput follows, rest where it stops. */
  #climbing(
    input: DecideInput,
    now: number,
    held: boolean,
    p50: number | undefined,
  ): ConcurrencyChange | undefined {
    if (p50 === undefined) return undefined;
    const elapsed = now - this.#changedAt;
    if (elapsed < Math.max(1000, 2 * p50) || this.#completions < 4) return undefined;
    const throughput = (this.#completions * 1000) / elapsed;
    const climb = this.#climb;
    this.#climb = undefined;
    if (climb && throughput < climb.throughput * climbGain) {
      this.#plateauUntil = now + plateauMs;
      return this.#set(
        climb.from,
        'latency',
        `${this.#limit} in flight gave ${round(throughput)}/s, ${climb.from} gave ${round(climb.throughput)}/s: more only added latency`,
      );
    }
    if (!input.waiting || held || now < this.#plateauUntil) return undefined;
    const from = this.#limit;
    const change = this.#grow(
      Math.ceil(from * 1.5) + 1,
      input,
      'throughput',
      `${round(throughput)}/s at ${from}`,
    );
    if (change) this.#climb = { from, throughput };
    return change;
  }

  #grow(to: number, input: DecideInput, reason: ChangeReason, detail: string): ConcurrencyChange | undefined {
    const bounded = Math.min(this.#max, Math.max(this.#limit, Math.min(to, Math.max(1, input.remaining))));
    return bounded > this.#limit ? this.#set(bounded, reason, detail) : undefined;
  }

  #set(to: number, reason: ChangeReason, detail: string): ConcurrencyChange | undefined {
    const next = Math.min(this.#max, Math.max(1, Math.round(to)));
    if (next === this.#limit) return undefined;
    const change = { from: this.#limit, to: next, reason, detail };
    this.#limit = next;
    this.#peak = Math.max(this.#peak, next);
    this.#changedAt = this.#clock.now();
    this.#completions = 0;
    return change;
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/**
 * The requests per second a key's limits allow: its request rate, or its token rate divided by
 * what a request books, whichever is lower; null when neither is known.
 */
export function allowedRequestRate(
  limits: { rpm: number | null; tpm: number | null },
  tokensPerRequest: number | undefined,
): number | null {
  const byRequests = limits.rpm === null ? Number.POSITIVE_INFINITY : limits.rpm / 60;
  const byTokens =
    limits.tpm === null || !tokensPerRequest ? Number.POSITIVE_INFINITY : limits.tpm / 60 / tokensPerRequest;
  const rate = Math.min(byRequests, byTokens);
  return Number.isFinite(rate) ? rate : null;
}
