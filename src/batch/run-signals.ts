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
 * --max-duration rather than a request timeout later.
 */
export function runSignals(o: {
  signal: AbortSignal;
  stopSignal: AbortSignal;
  deadlineInMs: number | undefined;
  graceMs: number;
}): RunSignals {
  const stop = new AbortController();
  const hard = new AbortController();
  const signal = AbortSignal.any([o.signal, hard.signal]);
  const stopSignal = AbortSignal.any([o.stopSignal, signal, stop.signal]);
  let grace: NodeJS.Timeout | undefined;
  const deadline =
    o.deadlineInMs === undefined
      ? undefined
      : setTimeout(
          () => {
            stop.abort();
            grace = setTimeout(() => hard.abort(), o.graceMs);
            grace.unref();
          },
          Math.max(0, o.deadlineInMs),
        );
  deadline?.unref();
  return {
    signal,
    stopSignal,
    dispose() {
      clearTimeout(deadline);
      clearTimeout(grace);
    },
  };
}
