import { isProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import type { RetryPolicy } from '../resilience/index.ts';
import type { Policy } from './policy.ts';
import { isStopping, type RunStop, sleepOrStop, stoppedError } from './stop.ts';

export interface RetryingOptions {
  policy: Pick<RetryPolicy, 'next' | 'onSuccess'>;
  stop: RunStop;
  events: EventSink;
  batchId: string;
  item: number;
  stage: string;
  counters: { retries: number };
}

/** Errors after which no attempt can succeed until a person acts: they end the run at once. */
const runEnding = new Set(['auth', 'quota', 'circuit_open']);

/**
 * The outermost policy: runs attempts until one gives an answer, asking the retry policy after
 * each failure whether to wait and try again (full jitter, Retry-After floor, budget), to fail
 * the item, or to stop the run. A cancelled attempt means the run is stopping.
 */
export function retrying(o: RetryingOptions): Policy {
  return (next) => async (attempt) => {
    for (let number = 1; ; number++) {
      if (isStopping(o.stop)) throw stoppedError(o.stop);
      try {
        const answer = await next({ ...attempt, number });
        if (!answer.cached) o.policy.onSuccess();
        return answer;
      } catch (e) {
        if (!isProviderError(e)) throw e;
        if (e.kind === 'cancelled') throw stoppedError(o.stop);
        if (runEnding.has(e.kind)) throw e;
        const nowMs = o.stop.clock.now();
        attempt.tally.firstFailureAt ??= nowMs;
        const step = o.policy.next(e, attempt.tally.requests, {
          nowMs,
          deadlineMs: o.stop.deadlineMs,
          sinceMs: attempt.tally.firstFailureAt,
        });
        if (step.action === 'stop') throw step.error;
        if (step.action === 'fail') throw e;
        o.counters.retries++;
        o.events.emit({
          type: 'retry_scheduled',
          batchId: o.batchId,
          item: o.item,
          stage: o.stage,
          attempt: attempt.tally.requests,
          delayMs: Math.round(step.delayMs),
          errorKind: e.kind,
          message: e.message + step.note,
        });
        await sleepOrStop(o.stop, step.delayMs);
      }
    }
  };
}
