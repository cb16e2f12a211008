import type { ChatClient } from '../client/chat-client.ts';
import { isProviderError } from '../core/errors.ts';
import { classifyFetchError } from '../resilience/index.ts';
import type { Step } from './policy.ts';
import type { CallEnd, CallObserver } from './ports.ts';

/**
 * Outcomes that say the provider is struggling, as the breaker counts them: they take requests out
 * of flight. A 429 is not one of them: the limiter slows the rate for it.
 */
const struggling = new Set(['server', 'timeout', 'network']);

/**
 * The innermost step: one request to the provider. Counts it (for the job and the run) before it
 * leaves, so a request that fails is counted too; anything thrown becomes a classified error.
 */
export function providerCall(o: {
  client: ChatClient;
  /** Cancels the request in flight (second Ctrl-C, end of the deadline's grace). */
  signal: AbortSignal;
  counters: { requests: number };
  observer?: CallObserver | undefined;
  /** Times the request on the wire (the job's request time, apart from its waits). */
  now: () => number;
}): Step {
  return async (attempt) => {
    attempt.tally.requests++;
    o.counters.requests++;
    const ended = o.observer?.sent();
    const sentAt = o.now();
    const onWire = (): void => {
      attempt.tally.requestMs += o.now() - sentAt;
    };
    try {
      const result = await o.client.complete(attempt.request, o.signal);
      onWire();
      const served = attempt.tally.usage ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0 };
      attempt.tally.usage = {
        promptTokens: served.promptTokens + result.usage.promptTokens,
        completionTokens: served.completionTokens + result.usage.completionTokens,
        totalTokens: served.totalTokens + result.usage.totalTokens,
      };
      ended?.('ok');
      return {
        content: result.content,
        usage: result.usage,
        cached: false,
        rateLimit: result.rateLimit,
        ...(result.model === undefined ? {} : { model: result.model }),
      };
    } catch (e) {
      const error = isProviderError(e)
        ? e
        : classifyFetchError(e, { timedOut: false, timeoutMs: 0, cancelled: o.signal.aborted });
      onWire();
      const end: CallEnd =
        error.kind === 'cancelled' ? 'cancelled' : struggling.has(error.kind) ? 'failed' : 'ok';
      ended?.(end);
      throw error;
    }
  };
}
