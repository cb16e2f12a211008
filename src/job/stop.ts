import type { Clock } from '../core/clock.ts';
import { FlashcardsError, ProviderError } from '../core/errors.ts';

/** How a run stops its jobs: a graceful stop, a hard one, and the --max-duration deadline. */
export interface RunStop {
  clock: Clock;
  /** Aborted to cancel in-flight work at once (second signal, end of grace period). */
  signal: AbortSignal;
  /** Aborted when the run stops taking new work (also when `signal` is): waits end early. */
  stopSignal: AbortSignal;
  deadlineMs: number | undefined;
}

export function isStopping(stop: RunStop): boolean {
  return stop.signal.aborted || stop.stopSignal.aborted;
}

/** The error a job ends with when its run stops: the deadline, or a cancellation. */
export function stoppedError(stop: RunStop): FlashcardsError {
  if (stop.deadlineMs !== undefined && stop.clock.now() >= stop.deadlineMs) {
    return new FlashcardsError('deadline', 'the run reached its --max-duration');
  }
  return new ProviderError('cancelled', 'the run was stopped', { retryable: false });
}

/** True when waiting `ms` from now would end past the run's deadline. */
export function pastDeadline(stop: RunStop, ms: number): boolean {
  return stop.deadlineMs !== undefined && stop.clock.now() + Math.max(0, ms) > stop.deadlineMs;
}

/** Sleeps `ms`, or less when `wake` resolves first; a stopped run ends the wait with its error. */
export async function sleepOrStop(stop: RunStop, ms: number, wake?: Promise<void>): Promise<void> {
  const early = wake ? new AbortController() : undefined;
  const signal = early ? AbortSignal.any([stop.stopSignal, early.signal]) : stop.stopSignal;
  try {
    await (wake ? Promise.race([stop.clock.sleep(ms, signal), wake]) : stop.clock.sleep(ms, signal));
  } catch {
    throw stoppedError(stop);
  } finally {
    // Ends the sleep that lost the race (its timer would hold the process open).
    early?.abort();
  }
}
