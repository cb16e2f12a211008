import type { RateLimitInfo } from '../core/headers.ts';
import type { BreakerDecision, CallOutcome } from '../resilience/index.ts';
import type { Policy } from './policy.ts';

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
  | {
      ok: false;
      delayMs: number;
      /** paused: the provider said to stop (a 429, "remaining 0"); max_wait: the budget has no room yet. */
      reason?: 'max_wait' | 'paused' | undefined;
      message: string;
      wake?: Promise<void> | undefined;
    };

/** What the limiter gate needs of the rate limiter. */
export interface LimiterPort {
  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Promise<Booking>;
  observe(obs: {
    status: number;
    info: RateLimitInfo;
    answer?: { promptTokens: number; totalTokens: number; maxTokens: number } | undefined;
  }): Promise<void>;
}

/** How a request ended, as the concurrency controller reads it. */
export type CallEnd = 'ok' | 'failed' | 'cancelled';

/**
 * Told of every booking and request, so the run can size how many requests it keeps in flight
 * (rate x latency; see batch/concurrency.ts). Optional: a job works the same without one.
 */
export interface CallObserver {
  /** A booking of `tokens`, and how long the limiter makes it wait (refused: asks it to wait). */
  booked(b: { tokens: number; waitMs: number }): void;
  /**
   * A request went out; call what this returns when it ends: `ok` when the provider answered
   * (whatever the answer, 429s included: the limiter answers those), `failed` for what says the
   * provider struggles (5xx, timeouts, resets), `cancelled` when the run stopped it.
   */
  sent(): (end: CallEnd) => void;
}

/**
 * What telemetry (telemetry/) adds to a job, when the run exports any: absent otherwise, and then
 * nothing of OpenTelemetry is loaded. Its policies only observe: they never change an answer.
 */
export interface JobTelemetry {
  /**
   * Wraps one logical model call, retries included (its CLIENT span and GenAI metrics); placed
   * inside the cache check, so an answer from the cache makes no span.
   */
  call(job: { jobId: string; item: number; stage: string }): Policy;
  /** Wraps each request sent: its status counted, a failed one an event on the call's span. */
  request: Policy;
  /** A response cache lookup of the job (hit or miss). */
  cacheLookup(hit: boolean): void;
}
