/** One request's abort signal: the caller's signal, or its own timeout. */
export interface RequestDeadline {
  readonly signal: AbortSignal;
  /** True when the timeout, not the caller, aborted the request. */
  readonly timedOut: boolean;
  /** Clears the timer and the link to the caller's signal; call when the request has ended. */
  done(): void;
}

/**
 * A fresh controller per request with its timer cleared when the request ends: AbortSignal.timeout
 * and AbortSignal.any would keep every finished request's state alive until the timeout. The timer
 * is unref'd: a request in flight holds the process open by its socket, not by its deadline.
 */
export function requestDeadline(
  timeoutMs: number,
  timeoutMessage: string,
  outer?: AbortSignal,
): RequestDeadline {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(timeoutMessage, 'TimeoutError'));
  }, timeoutMs);
  timer.unref();
  const onAbort = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onAbort();
  else outer?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    done() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onAbort);
    },
  };
}
