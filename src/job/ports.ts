import type { RateLimitInfo } from '../core/headers.ts';
import type { BreakerDecision, CallOutcome } from '../resilience/index.ts';

/**
 * What the job's gates need of the shared policies: the circuit breaker and the rate limiter, on
 * whatever backend they keep their state (SQLite today). Narrow on purpose: a gate's tests fake
 * exactly this.
 */

/** What the breaker gate needs of the circuit breaker. */
export interface BreakerPort {
  acquire(): Promise<BreakerDecision>;
  record(outcome: CallOutcome, decision: { probe: boolean }): Promise<void>;
  /** Gives back a decision whose call was never sent (a half-open probe goes to the next caller). */
  release(decision: { probe: boolean }): Promise<void>;
  /** Writes what is counted in memory (at the end of a run). */
  flush(): Promise<void>;
}

export type Booking =
  | { ok: true; delayMs: number; settle(actualTokens: number): Promise<void>; cancel(): Promise<void> }
  | { ok: false; delayMs: number; message: string; wake?: Promise<void> | undefined };

/** What the limiter gate needs of the rate limiter. */
export interface LimiterPort {
  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Promise<Booking>;
  observe(obs: { status: number; info: RateLimitInfo }): Promise<void>;
}
