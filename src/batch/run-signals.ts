import type { Clock } from '../core/clock.ts';

/** How long requests in flight may finish after --max-duration is reached. */
export const DEADLINE_GRACE_MS = 5000;

export interface RunSignals {
  /** Cancels requests in flight: second Ctrl-C, or the end of the deadline's grace. */
  signal: AbortSignal;
  /** Stops taking new work: first Ctrl-C, the deadline, or `signal`. */
  stopSignal: AbortSignal;
  dispose(): void;
}

/**
 * Combines the process's signals with the run's deadline. At the deadline no new work starts;
 * requests in flight get a short grace, then are cancelled, so a cron run ends close to
 * --max-duration rather than a request timeout later. Both timers run on `clock` (whose timers
 * never keep a finished process alive), so a FakeClock drives them exactly.
 */
export function runSignals(o: {
  signal: AbortSignal;
  stopSignal: AbortSignal;
  deadlineInMs: number | undefined;
  graceMs: number;
  clock: Clock;
}): RunSignals {
  const stop = new AbortController();
  const hard = new AbortController();
  const signal = AbortSignal.any([o.signal, hard.signal]);
  const stopSignal = AbortSignal.any([o.stopSignal, signal, stop.signal]);
  let cancelGrace: (() => void) | undefined;
  const cancelDeadline =
    o.deadlineInMs === undefined
      ? undefined
      : o.clock.timer(Math.max(0, o.deadlineInMs), () => {
          stop.abort();
          cancelGrace = o.clock.timer(o.graceMs, () => hard.abort());
        });
  return {
    signal,
    stopSignal,
    dispose() {
      cancelDeadline?.();
      cancelGrace?.();
    },
  };
}
