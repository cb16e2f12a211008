import { FlashcardsError, isProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import { noRateLimitInfo } from '../limiter/headers.ts';
import type { Answer, Policy } from './policy.ts';
import type { CallObserver, LimiterPort } from './ports.ts';
import { pastDeadline, type RunStop, sleepOrStop } from './stop.ts';

export interface LimiterGateOptions {
  limiter: LimiterPort;
  /** max_tokens of every request: booked against the token budget until the answer says what it used. */
  maxTokens: number;
  stop: RunStop;
  events: EventSink;
  batchId: string;
  observer?: CallObserver | undefined;
}

/** Without a deadline, a reservation may be booked this far ahead at most before asking again. */
const defaultMaxWaitMs = 120_000;
/** A refused reservation is asked again after at most this long (sooner when the limiter wakes it). */
const recheckMs = 1000;
/** Waits shorter than this are the limiter pacing itself, not worth a line in the log. */
const reportWaitsFromMs = 2000;
const waitEventEveryMs = 5000;

/**
 * The shared rate limiter as a gate: each call first books one request and its estimated tokens,
 * waits until its booked send time, and goes. The response's rate-limit headers go to the limiter
 * whatever the outcome; the booking is then settled with the tokens really used, or cancelled when
 * nothing was spent (a 429, a request that never left).
 */
export function limiterGate(o: LimiterGateOptions): Policy {
  return (next) => async (attempt) => {
    const tokens = attempt.promptTokens + o.maxTokens;
    const enteredAt = o.stop.clock.now();
    let lastWaitEvent = Number.NEGATIVE_INFINITY;
    const report = (waitMs: number, reason: string, kind: 'pacing' | 'paused'): void => {
      const now = o.stop.clock.now();
      if (waitMs < reportWaitsFromMs || now - lastWaitEvent < waitEventEveryMs) return;
      lastWaitEvent = now;
      o.events.emit({ type: 'rate_limited', batchId: o.batchId, waitMs, reason, kind });
    };
    for (;;) {
      const maxWaitMs =
        o.stop.deadlineMs === undefined
          ? defaultMaxWaitMs
          : Math.max(0, o.stop.deadlineMs - o.stop.clock.now());
      const reservation = await o.limiter.reserve({ jobId: attempt.jobId, tokens }, { maxWaitMs });
      o.observer?.booked({ tokens, waitMs: reservation.delayMs });
      if (!reservation.ok) {
        report(
          reservation.delayMs,
          reservation.message,
          reservation.reason === 'paused' ? 'paused' : 'pacing',
        );
        if (pastDeadline(o.stop, reservation.delayMs)) {
          throw new FlashcardsError(
            'deadline',
            'the run reached its --max-duration while waiting for the rate limit',
          );
        }
        await sleepOrStop(o.stop, Math.min(Math.max(reservation.delayMs, 10), recheckMs), reservation.wake);
        continue;
      }
      if (reservation.delayMs > 0) {
        report(reservation.delayMs, 'rate limit budget', 'pacing');
        try {
          await sleepOrStop(o.stop, reservation.delayMs);
        } catch (e) {
          await reservation.cancel();
          throw e;
        }
      }
      attempt.tally.limiterWaitMs = (attempt.tally.limiterWaitMs ?? 0) + (o.stop.clock.now() - enteredAt);
      let answer: Answer;
      try {
        answer = await next(attempt);
      } catch (e) {
        if (!isProviderError(e)) {
          await reservation.cancel();
          throw e;
        }
        if (e.status !== undefined || e.rateLimit !== undefined) {
          await o.limiter.observe({ status: e.status ?? 200, info: e.rateLimit ?? noRateLimitInfo });
        }
        // A 429 or a request that never left spent no provider tokens; anything else may have.
        if (e.kind === 'rate_limit' || e.kind === 'cancelled') await reservation.cancel();
        else await reservation.settle(attempt.promptTokens);
        throw e;
      }
      if (answer.rateLimit) {
        const { promptTokens, totalTokens } = answer.usage;
        await o.limiter.observe({
          status: 200,
          info: answer.rateLimit,
          answer: { promptTokens, totalTokens, maxTokens: o.maxTokens },
        });
      }
      await reservation.settle(answer.usage.totalTokens);
      return answer;
    }
  };
}
