import type { RateLimitInfo } from '../core/headers.ts';
import type { BreakerDecision, CallOutcome } from '../resilience/index.ts';

/** A value now or later: the SQLite backends answer at once, a networked store later. */
export type Awaitable<T> = T | Promise<T>;

/** What the breaker gate needs of the circuit breaker. */
export interface BreakerPort {
  acquire(): Awaitable<BreakerDecision>;
  record(outcome: CallOutcome, decision: { probe: boolean }): Awaitable<void>;
  /** Gives back a decision whose call was never sent (a half-open probe goes to the next caller). */
  release(decision: { probe: boolean }): Awaitable<void>;
  /** Writes what is counted in memory (at the end of a run). */
  flush(): Awaitable<void>;
}

export type Booking =
  | { ok: true; delayMs: number; settle(actualTokens: number): Awaitable<void>; cancel(): Awaitable<void> }
  | { ok: false; delayMs: number; message: string; wake?: Promise<void> | undefined };

/** What the limiter gate needs of the rate limiter. */
export interface LimiterPort {
  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Awaitable<Booking>;
  observe(obs: { status: number; info: RateLimitInfo }): Awaitable<void>;
}
