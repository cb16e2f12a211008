import type { ChatRequest, TokenUsage } from '../client/chat-client.ts';
import type { RateLimitInfo } from '../core/headers.ts';

/** One try of a job's request, handed down the chain of policies. */
export interface Attempt {
  request: ChatRequest;
  /** 1 for the first try. */
  number: number;
  /** `<batch>:<item>:<stage>`: picks the job's limiter shards, names it in events. */
  jobId: string;
  /** Prompt tokens of the request as the limiter books them (estimated from its text). */
  promptTokens: number;
  /**
   * Requests this job has sent so far (its attempts), their time on the wire, and when its first
   * attempt failed.
   */
  tally: {
    requests: number;
    requestMs: number;
    /**
     * Tokens of every answer the provider served this job, rejected ones included: what it bills
     * (a repair retry pays for the rejected answer too).
     */
    usage?: TokenUsage | undefined;
    firstFailureAt?: number | undefined;
    /** Time spent waiting for the rate limiter, all attempts (for telemetry). */
    limiterWaitMs?: number | undefined;
    /** The breaker's state when the last attempt went through (for telemetry). */
    breakerState?: 'closed' | 'half_open' | undefined;
  };
}

/** An answer coming back up the chain: the content is not validated yet. */
export interface Answer {
  content: string;
  usage: TokenUsage;
  /** Served without a request (a stale cache entry while the circuit is open). */
  cached: boolean;
  /** The response's rate-limit headers; absent for an answer that was not a request. */
  rateLimit?: RateLimitInfo | undefined;
  /** The model that answered, when the provider said. */
  model?: string | undefined;
  /** The answer parsed and checked against the stage's schema (set by the validation policy). */
  value?: unknown;
}

/** What a step gives back: an answer, or it throws a ProviderError (or a run-ending error). */
export type Step = (attempt: Attempt) => Promise<Answer>;

/** A policy wraps the step inside it: gate before, bookkeeping after, as cockatiel's policies do. */
export type Policy = (next: Step) => Step;

/**
 * Composes policies outermost first: `wrap(a, b, c)(call)` runs a, which runs b, which runs c,
 * which runs the call. The one place where a job's policies meet is the list given here.
 */
export function wrap(...policies: Policy[]): Policy {
  return (inner) => policies.reduceRight<Step>((next, policy) => policy(next), inner);
}
