import { isProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import { circuitOpenError } from '../resilience/index.ts';
import type { CircuitWaits } from './circuit-waits.ts';
import type { Answer, Policy } from './policy.ts';
import type { BreakerPort } from './ports.ts';
import { isStopping, pastDeadline, type RunStop, sleepOrStop, stoppedError } from './stop.ts';

export interface BreakerGateOptions {
  breaker: BreakerPort;
  /** Names the provider in the error a run stops with. */
  providerKey: string;
  /** How long the run may wait on open circuits in all before giving up (--max-wait). */
  maxWaitMs: number;
  /** The run's waits on open circuits, shared by its jobs. */
  waits: CircuitWaits;
  stop: RunStop;
  events: EventSink;
  batchId: string;
  /** An answer to give instead of waiting while the circuit is open (--stale-if-error). */
  fallback?: (() => Promise<Answer | undefined>) | undefined;
  /**
   * The time the breaker's own times (when the next probe may go) are in: the shared store's
   * (Redis TIME, as estimated from here); this host's clock by default.
   */
  stateNow?: (() => number) | undefined;
}

/** An open circuit is asked again at least this often: another process may close or isolate it. */
const recheckMs = 1000;
/**
 * The circuit breaker as a gate: a call goes through only when the shared breaker allows it, and
 * its outcome is recorded. While the circuit is open the gate waits (asking again every second),
 * or serves the fallback, or ends the run once the run's waits on open circuits would pass
 * --max-wait in all, or the deadline. An attempt that stops before it was sent gives a half-open
 * probe back instead of recording it.
 */
export function breakerGate(o: BreakerGateOptions): Policy {
  return (next) => async (attempt) => {
    for (;;) {
      if (isStopping(o.stop)) throw stoppedError(o.stop);
      const decision = await o.breaker.acquire();
      if (decision.allowed) {
        const waitedMs = o.waits.resumed(o.stop.clock.now());
        if (waitedMs !== undefined) {
          o.events.emit({ type: 'breaker_wait', batchId: o.batchId, phase: 'ended', waitedMs });
        }
        attempt.tally.breakerState = decision.probe ? 'half_open' : 'closed';
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
      const stateNow = o.stateNow?.() ?? now;
      const waitMs = decision.retryAtMs === null ? Number.POSITIVE_INFINITY : decision.retryAtMs - stateNow;
      if (o.waits.totalMs(now) + Math.max(0, waitMs) > o.maxWaitMs || pastDeadline(o.stop, waitMs)) {
        throw circuitOpenError(o.providerKey, decision, stateNow, o.waits.totalMs(now));
      }
      if (o.waits.waiting(now)) {
        o.events.emit({
          type: 'breaker_wait',
          batchId: o.batchId,
          phase: 'began',
          state: decision.state,
          until: decision.retryAtMs === null ? null : new Date(decision.retryAtMs).toISOString(),
        });
      }
      await sleepOrStop(o.stop, Math.min(Math.max(waitMs, 50), recheckMs));
    }
  };
}
