import { ExitCode, errorCode, FlashcardsError, type ProviderError, usageError } from '../core/errors.ts';
import type { Random } from '../core/random.ts';

export interface RetrySettings {
  /** Total attempts for one request, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /**
   * A transient failure (5xx, timeout, reset) fails the item only once its attempts are spent and
   * this long has passed since its first failure: an outage near the end of a run, when too few
   * calls are left for the breaker to open, must not fail items that a minute later would succeed.
   */
  windowMs?: number | undefined;
}

export const defaultRetrySettings: RetrySettings = {
  maxAttempts: 6,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  windowMs: 60_000,
};

/** Failures that say the provider is having a bad moment, not that the request is wrong. */
const transientKinds = new Set(['server', 'timeout', 'network']);

/** Connection errors that mean nothing is listening at the address (or the name does not resolve). */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Refused connections, with no request of the run answered, before the run gives up on the address. */
export const unreachableBeforeStop = 5;

/**
 * A retry budget (gRPC retry throttling / AWS retry quota): every retry spends one token, every success
 * earns back `successCredit`. A full bucket allows a burst of `maxTokens - 1` retries in a row; once it is
 * drained, retries continue only at about `successCredit` per success (one retry per ten successes by
 * default), so an outage cannot multiply the load by `maxAttempts`.
 */
export interface RetryBudgetSettings {
  maxTokens: number;
  successCredit: number;
}

export const defaultRetryBudget: RetryBudgetSettings = { maxTokens: 20, successCredit: 0.5 };

/**
 * A 429 is the provider telling us when to come back, not a sign that the request is bad: it gets this many
 * times `maxAttempts`, and spends no budget (the limiter paces it). The deadline still applies.
 */
export const rateLimitAttemptFactor = 3;

export type RetryDecision =
  | { retry: true; delayMs: number }
  | { retry: false; reason: 'permanent' | 'attempts' | 'budget' | 'deadline' | 'unusable' };

/**
 * What the job does after a failed attempt: try again after `delayMs`, fail the item (the error is
 * the item's), or stop the whole run (nothing else can succeed until a person acts).
 */
export type RetryStep =
  | { action: 'retry'; delayMs: number; note: string }
  | { action: 'fail' }
  | { action: 'stop'; error: FlashcardsError };

/** Requests refused as bad (400, 404, 422) with none accepted before the run gives up on the provider. */
export const refusalsBeforeUnusable = 10;

/** Budget arithmetic in thousandths of a token, so fractional credits add up exactly. */
const scale = 1000;

/**
 * Decides whether and when a failed call is tried again. One instance per process (per provider), shared by
 * all workers, so the budget sees every outcome. The caller sleeps `delayMs`, then takes a fresh limiter
 * reservation and asks the breaker again before the next attempt.
 */
export class RetryPolicy {
  readonly settings: RetrySettings;
  readonly #random: Random;
  readonly #maxUnits: number;
  readonly #creditUnits: number;
  #units: number;
  #succeeded = false;
  #refusals = 0;
  #unreachable = 0;
  /** The provider as messages name it (a public URL, no credentials). */
  readonly #endpoint: string;

  constructor(
    settings: RetrySettings,
    deps: { random: Random; budget?: RetryBudgetSettings | undefined; endpoint?: string | undefined },
  ) {
    checkSettings(settings);
    const budget = deps.budget ?? defaultRetryBudget;
    if (!(budget.maxTokens >= 1) || !(budget.successCredit >= 0)) {
      throw usageError(
        `retry budget needs maxTokens >= 1 and successCredit >= 0, got ${budget.maxTokens} and ${budget.successCredit}`,
      );
    }
    this.settings = { ...settings };
    this.#random = deps.random;
    this.#maxUnits = Math.round(budget.maxTokens * scale);
    this.#creditUnits = Math.round(budget.successCredit * scale);
    this.#units = this.#maxUnits;
    this.#endpoint = deps.endpoint ?? 'the provider';
  }

  /**
   * attempt = number of attempts already made (1 after the first failure); `sinceMs`, when the
   * job's first failure happened (the retry window counts from it).
   */
  decide(
    error: ProviderError,
    attempt: number,
    ctx: { nowMs: number; deadlineMs?: number | undefined; sinceMs?: number | undefined },
  ): RetryDecision {
    if (!error.retryable) {
      // The same refusal for the first requests of a run, and no success at all: a wrong model
      // name or a feature the model lacks, not ten bad items. Stop before sending the rest.
      if (error.kind === 'bad_request' && !this.#succeeded && ++this.#refusals >= refusalsBeforeUnusable) {
        return { retry: false, reason: 'unusable' };
      }
      return { retry: false, reason: 'permanent' };
    }
    const rateLimited = error.kind === 'rate_limit';
    const limit = rateLimited
      ? this.settings.maxAttempts * rateLimitAttemptFactor
      : this.settings.maxAttempts;
    if (attempt >= limit) {
      const windowMs = this.settings.windowMs ?? 0;
      const inWindow =
        transientKinds.has(error.kind) && ctx.sinceMs !== undefined && ctx.nowMs - ctx.sinceMs < windowMs;
      if (!inWindow) return { retry: false, reason: 'attempts' };
    }
    const jitter = fullJitterDelay(
      attempt - 1,
      this.settings.baseDelayMs,
      this.settings.maxDelayMs,
      this.#random,
    );
    // Retry-After is a floor: the provider knows better than our backoff when it can take us again.
    const delayMs = Math.max(jitter, error.retryAfterMs ?? 0);
    if (ctx.deadlineMs !== undefined && ctx.nowMs + delayMs > ctx.deadlineMs)
      return { retry: false, reason: 'deadline' };
    if (!rateLimited) {
      if (this.#units - scale <= 0) {
        // The whole budget went on answers that failed validation and not one has passed: the
        // provider answers, but not in a form this pipeline can use (a model without structured
        // output, a proxy's HTML). Waiting and retrying would crawl through every item for hours.
        if (error.kind === 'invalid_response' && !this.#succeeded)
          return { retry: false, reason: 'unusable' };
        return { retry: false, reason: 'budget' };
      }
      this.#units -= scale;
    }
    return { retry: true, delayMs };
  }

  /**
   * The decision as the job acts on it. A spent budget sheds load without failing the item: it
   * waits the longest backoff (attempts still bound the item, and the breaker, seeing these
   * failures, opens and holds everyone). A provider found unusable, or a deadline that a retry would
   * pass, stops the run.
   */
  next(
    error: ProviderError,
    attempt: number,
    ctx: { nowMs: number; deadlineMs?: number | undefined; sinceMs?: number | undefined },
  ): RetryStep {
    // Nothing listens at the address and nothing of this run ever answered: a server that is not
    // running, a wrong port or host. Waiting would only stretch "connection refused" over minutes.
    const code = error.kind === 'network' ? errorCode(error) : undefined;
    if (code !== undefined && unreachableCodes.has(code) && !this.#succeeded) {
      if (++this.#unreachable >= unreachableBeforeStop) {
        return {
          action: 'stop',
          error: new FlashcardsError(
            'network',
            `cannot reach the provider at ${this.#endpoint}: ${this.#unreachable} attempts, none answered (${code === 'ECONNREFUSED' ? 'connection refused' : `${code}: the host name does not resolve or the network does not reach it`})`,
            {
              exitCode: ExitCode.aborted,
              hint: 'is the server running, and is --base-url right? `flashcards doctor` checks the connection',
            },
          ),
        };
      }
    }
    const verdict = this.decide(error, attempt, ctx);
    if (verdict.retry) return { action: 'retry', delayMs: verdict.delayMs, note: '' };
    switch (verdict.reason) {
      case 'budget':
        return {
          action: 'retry',
          delayMs: this.settings.maxDelayMs,
          note: ' (retry budget spent: waiting the longest backoff)',
        };
      case 'unusable': {
        const what =
          error.kind === 'bad_request'
            ? 'the provider refused the first requests of the run and accepted none'
            : "the provider's answers are unusable: none has passed validation yet, and the retry budget went on them";
        return {
          action: 'stop',
          error: new FlashcardsError('config', `${what} (last: ${error.message})`, {
            exitCode: ExitCode.aborted,
            hint: 'check --model and --base-url: the model must exist there and support structured output (response_format json_schema); then run again with --retry-failed',
          }),
        };
      }
      case 'deadline':
        if (!error.retryable) return { action: 'fail' };
        return {
          action: 'stop',
          error: new FlashcardsError(
            'deadline',
            `the run reached its --max-duration (last error: ${error.message})`,
          ),
        };
      default:
        return { action: 'fail' };
    }
  }

  /** Earns part of a token back; call once per successful call (first try or retry). */
  onSuccess(): void {
    this.#succeeded = true;
    this.#units = Math.min(this.#maxUnits, this.#units + this.#creditUnits);
  }

  get budgetTokens(): number {
    return this.#units / scale;
  }
}

/**
 * "Full jitter" backoff (AWS architecture blog): a uniform integer delay in [0, min(cap, base x 2^attempt)].
 * `attempt` counts from 0 for the first retry. Spreading retries over the whole interval is what keeps
 * many workers that failed together from retrying together.
 */
export function fullJitterDelay(attempt: number, baseMs: number, capMs: number, random: Random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 52));
  return Math.floor(random() * (ceiling + 1));
}

function checkSettings(s: RetrySettings): void {
  if (!Number.isInteger(s.maxAttempts) || s.maxAttempts < 1) {
    throw usageError(`retry maxAttempts must be an integer >= 1, got ${s.maxAttempts}`);
  }
  if (!(s.baseDelayMs >= 0) || !(s.maxDelayMs >= s.baseDelayMs)) {
    throw usageError(
      `retry delays need 0 <= baseDelayMs <= maxDelayMs, got base ${s.baseDelayMs} ms and cap ${s.maxDelayMs} ms`,
    );
  }
}
