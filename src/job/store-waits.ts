import { FlashcardsError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import { isStoreUnavailable, type StoreHealth } from '../store/health.ts';
import type { Policy } from './policy.ts';
import { type RunStop, sleepOrStop } from './stop.ts';

/**
 * A shared store (Redis) that stops answering holds up what depends on it: nothing is booked or
 * sent until it answers again. One wait serves the whole run (the health is shared); it ends
 * when the store is back, and the run ends (exit 3) once it has been away longer than
 * `--max-wait`.
 */

/** How often a waiting job looks at the store's health (the probe itself runs every 500 ms). */
const lookEveryMs = 500;

export interface StoreWaitOptions {
  health: StoreHealth;
  /** How long the store may stay away before the run gives up (--max-wait). */
  maxWaitMs: number;
  stop: RunStop;
}

/** The error that ends a run whose store stayed away too long. */
export function storeGoneTooLong(where: string, awayMs: number): FlashcardsError {
  return new FlashcardsError(
    'store_unavailable',
    `the store at ${where} has not answered for ${Math.round(awayMs / 1000)}s (--max-wait)`,
    {
      hint: 'answers already paid for are kept in the data directory (outbox.db) and written first by the next run; run the same command again once Redis is back',
    },
  );
}

/** Waits until the store answers; throws when it is lost, stays away past the budget, or the run stops. */
export async function waitForStore(o: StoreWaitOptions): Promise<void> {
  for (;;) {
    if (o.health.lost) throw o.health.lost;
    const since = o.health.awaySince;
    if (since === undefined) return;
    const awayMs = o.stop.clock.now() - since;
    if (awayMs > o.maxWaitMs) throw storeGoneTooLong(o.health.where, awayMs);
    await sleepOrStop(o.stop, Math.min(lookEveryMs, o.maxWaitMs - awayMs + 1), o.health.back());
  }
}

/**
 * The policy: a call that met the store away before its request was sent waits for the store and
 * goes again. Once a request went out, its answer is paid for: the bookkeeping after it tolerates
 * the store's absence (tolerant-ports.ts) and the result goes to the outbox, so nothing here
 * repeats a paid request.
 */
export function storeWaits(o: StoreWaitOptions & { events: EventSink; batchId: string }): Policy {
  return (next) => async (attempt) => {
    for (;;) {
      const sentBefore = attempt.tally.requests;
      try {
        return await next(attempt);
      } catch (e) {
        if (!isStoreUnavailable(e) || attempt.tally.requests !== sentBefore) throw e;
        await waitForStore(o);
      }
    }
  };
}
