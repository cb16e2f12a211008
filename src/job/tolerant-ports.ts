import { isStoreUnavailable } from '../store/health.ts';
import type { Booking, BreakerPort, LimiterPort } from './ports.ts';

/**
 * The limiter's and breaker's bookkeeping after a request (settling a booking, recording an
 * outcome, reading the answer's rate-limit headers) must not lose a paid answer when the shared
 * store does not answer: that bookkeeping is skipped, at the cost of a budget or a breaker tally
 * a little off for a moment. What decides whether to send (acquire, reserve) still fails, and
 * the job waits for the store (store-waits.ts). On state.db these errors never occur.
 */

async function tolerating(work: Promise<void>): Promise<void> {
  try {
    await work;
  } catch (e) {
    if (!isStoreUnavailable(e)) throw e;
  }
}

export function tolerantBreaker(breaker: BreakerPort): BreakerPort {
  return {
    acquire: () => breaker.acquire(),
    record: (outcome, decision) => tolerating(breaker.record(outcome, decision)),
    release: (decision) => tolerating(breaker.release(decision)),
    flush: () => tolerating(breaker.flush()),
  };
}

function tolerantBooking(booking: Booking): Booking {
  if (!booking.ok) return booking;
  return {
    ok: true,
    delayMs: booking.delayMs,
    settle: (actualTokens) => tolerating(booking.settle(actualTokens)),
    cancel: () => tolerating(booking.cancel()),
  };
}

export function tolerantLimiter(limiter: LimiterPort): LimiterPort {
  return {
    reserve: async (req, opts) => tolerantBooking(await limiter.reserve(req, opts)),
    observe: (obs) => tolerating(limiter.observe(obs)),
  };
}
