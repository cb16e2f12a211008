import type { ChatClient } from '../client/chat-client.ts';
import { isProviderError } from '../core/errors.ts';
import { classifyFetchError } from '../resilience/index.ts';
import type { Step } from './policy.ts';

/**
 * The innermost step: one request to the provider. Counts it (for the job and the run) before it
 * leaves, so a request that fails is counted too; anything thrown becomes a classified error.
 */
export function providerCall(o: {
  client: ChatClient;
  /** Cancels the request in flight (second Ctrl-C, end of the deadline's grace). */
  signal: AbortSignal;
  counters: { requests: number };
}): Step {
  return async (attempt) => {
    attempt.tally.requests++;
    o.counters.requests++;
    try {
      const result = await o.client.complete(attempt.request, o.signal);
      return { content: result.content, usage: result.usage, cached: false, rateLimit: result.rateLimit };
    } catch (e) {
      throw isProviderError(e)
        ? e
        : classifyFetchError(e, { timedOut: false, timeoutMs: 0, cancelled: o.signal.aborted });
    }
  };
}
