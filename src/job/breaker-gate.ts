import { isProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import { circuitOpenError } from '../resilience/index.ts';
import type { Answer, Policy } from './policy.ts';
import type { BreakerPort } from './ports.ts';
import { isStopping, pastDeadline, type RunStop, sleepOrStop, stoppedError } from './stop.ts';

export interface BreakerGateOptions {
  breaker: BreakerPort;
  /** Names the provider in the error a run stops with. */
  providerKey: string;
  /** How long to wait for an open circuit before giving up the run (--max-wait). */
  maxWaitMs: number;
  stop: RunStop;
  events: EventSink;
  batchId: string;
  /** An answer to give instead of waiting while the circuit is open (--stale-if-error). */
  fallback?: (() => Promise<Answer | undefined>) | undefined;
}

/** An open circuit is asked again at least this often: another process may close or isolate it. */
const recheckMs = 1000;
/** While a run waits on an open circuit, one `breaker_wait` event per this long at most. */
const waitEventEveryMs = 5000;

/**
 * The circuit breaker as a gate: a call goes through only when the shared breaker allows it, and
 * its outcome is recorded. While the circuit is open the gate waits (asking again every second),
 * or serves the fallback, or ends the run once the wait would pass --max-wait or the deadline. An
 * attempt that stops before it was sent gives a half-open probe back instead of recording it.
 */
export function breakerGate(o: BreakerGateOptions): Policy {
  return (next) => async (attempt) => {
    let lastWaitEvent = Number.NEGATIVE_INFINITY;
    for (;;) {
      if (isStopping(o.stop)) throw stoppedError(o.stop);
      const decision = await o.breaker.acquire();
      if (decision.allowed) {
        let answer: Answer;
        try {
          answer = await next(attempt);
        } catch (e) {
          if (isProviderError(e)) await o.breaker.record({ ok: false, error: e }, decision);
          else await o.breaker.release(decision);
          throw e;
        }
        await o.breaker.record({ ok: true }, decision);
        return answer;
      }
      const stale = await o.fallback?.();
      if (stale) return stale;
      const now = o.stop.clock.now();
      const waitMs = decision.retryAtMs === null ? Number.POSITIVE_INFINITY : decision.retryAtMs - now;
      if (waitMs > o.maxWaitMs || pastDeadline(o.stop, waitMs)) {
        throw circuitOpenError(o.providerKey, decision, now);
      }
      if (now - lastWaitEvent >= waitEventEveryMs) {
        lastWaitEvent = now;
        o.events.emit({
          type: 'breaker_wait',
          batchId: o.batchId,
          state: decision.state,
          untilMs: decision.retryAtMs,
        });
      }
      await sleepOrStop(o.stop, Math.min(Math.max(waitMs, 50), recheckMs));
    }
  };
}
