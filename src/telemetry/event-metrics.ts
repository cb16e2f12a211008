import type { EventSink } from '../core/events.ts';
import type { Instruments } from './instruments.ts';

/** flashcards.breaker.state's values, by the state a transition goes to. */
export const BREAKER_STATE_VALUE: Readonly<Record<string, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
  isolated: 3,
};

/**
 * The run's events as metrics: items finished (done when their last stage succeeded, failed when
 * a stage failed), retries, breaker transitions and state, and the batch's pending items (from
 * the run's start, less the items this run finishes: other runs sharing the batch are not seen
 * between two starts). The calls' own metrics come from the chat policy (chat-span.ts).
 */
export function eventMetrics(ins: Instruments, o: { lastStage: string }): EventSink {
  let pending: number | undefined;
  const finished = (outcome: 'done' | 'failed'): void => {
    ins.items.add(1, { outcome });
    if (pending !== undefined) {
      pending = Math.max(0, pending - 1);
      ins.queuePending.record(pending);
    }
  };
  return {
    emit(event) {
      switch (event.type) {
        case 'run_started':
          pending = event.remaining;
          ins.queuePending.record(pending);
          return;
        case 'job_succeeded':
          if (event.stage === o.lastStage) finished('done');
          return;
        case 'job_failed':
          finished('failed');
          return;
        case 'retry_scheduled':
          ins.retries.add(1);
          return;
        case 'breaker_transition':
          ins.breakerTransitions.add(1, { to: event.to });
          ins.breakerState.record(BREAKER_STATE_VALUE[event.to] ?? -1, { key: event.key });
          return;
        default:
          return;
      }
    },
  };
}
