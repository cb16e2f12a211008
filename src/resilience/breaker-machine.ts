import { formatDuration } from '../core/duration.ts';
import { type ProviderError, usageError } from '../core/errors.ts';

/**
 * The circuit breaker's rules as functions over plain values: no clock, no storage. The store
 * backends persist a `Circuit`; the `CircuitBreaker` facade reads it, asks these functions what
 * follows, and writes the answer back with a compare-and-set (see breaker-store.ts).
 */

export type BreakerState = 'closed' | 'open' | 'half_open' | 'isolated';

/** Who holds the half-open probe and until when (a crashed prober loses it at expiry). */
export interface Probe {
  owner: string;
  until: number;
}

/**
 * The state of one breaker. `opens` counts opens since it was last closed (the break grows with it);
 * `reason` says why it is open or isolated (isolated by hand without a reason: null).
 */
export type Circuit =
  | { state: 'closed' }
  | { state: 'open'; openedAt: number; retryAt: number; opens: number; reason: string }
  | { state: 'half_open'; openedAt: number; opens: number; probe: Probe; reason: string }
  | { state: 'isolated'; openedAt: number; opens: number; reason: string | null };

export const closedCircuit: Circuit = Object.freeze({ state: 'closed' });

export interface BreakerSettings {
  /** Sliding window the failure ratio is measured over. */
  samplingWindowMs: number;
  /** Opens when failures / calls reaches this, in (0, 1]. */
  failureRatio: number;
  /** ...and at least this many calls were seen in the window. */
  minThroughput: number;
  /** First break; each failed probe multiplies it by `breakGrowth`. */
  breakDurationMs: number;
  maxBreakDurationMs: number;
  /** How long a half-open probe may run before another process may take over: request timeout + a margin. */
  probeLeaseMs: number;
}

export const defaultBreakerSettings: BreakerSettings = {
  samplingWindowMs: 30_000,
  failureRatio: 0.5,
  minThroughput: 10,
  breakDurationMs: 30_000,
  maxBreakDurationMs: 300_000,
  probeLeaseMs: 90_000,
};

export const breakGrowth = 1.5;

/** While another process probes, ask again this soon rather than at the (much later) lease expiry. */
export const halfOpenRecheckMs = 1000;

/** The window is a ring of this many buckets (Polly does the same); old buckets drop out whole. */
export const windowBuckets = 10;

/**
 * `retryAtMs` on a rejection: open, when the break ends (the next probe may start); half_open, when to ask
 * again (another caller's probe is running: at most 1 s, or its lease expiry); isolated, null (until closed
 * by hand).
 */
export type BreakerDecision =
  | { allowed: true; probe: boolean }
  | { allowed: false; state: BreakerState; retryAtMs: number | null; reason: string };

export type Rejection = Extract<BreakerDecision, { allowed: false }>;

export type CallOutcome = { ok: true } | { ok: false; error: ProviderError };

export type Verdict = 'success' | 'failure' | 'ignore';

export interface WindowCounts {
  calls: number;
  failures: number;
}

/** A change of state; `cause` is what history and onTransition say when the change is announced. */
export interface Step {
  next: Circuit;
  cause: string;
}

/**
 * How an outcome reads as evidence of the provider's health. Only server, timeout and network failures
 * mean "the provider is down"; a 429 belongs to the limiter, a cancellation says nothing, and auth, quota,
 * bad requests and invalid output all prove the provider answered.
 */
export function breakerVerdict(outcome: CallOutcome): Verdict {
  if (outcome.ok) return 'success';
  switch (outcome.error.kind) {
    case 'server':
    case 'timeout':
    case 'network':
      return 'failure';
    case 'rate_limit':
    case 'cancelled':
    case 'circuit_open':
      return 'ignore';
    default:
      return 'success';
  }
}

/** Break after `failedProbes` failed probes in a row: base x 1.5^n, capped. */
export function breakDurationMs(failedProbes: number, settings: BreakerSettings): number {
  return Math.min(
    settings.maxBreakDurationMs,
    Math.round(settings.breakDurationMs * breakGrowth ** failedProbes),
  );
}

const allowed: BreakerDecision = Object.freeze({ allowed: true, probe: false });

/** The decision a state implies at `now`, or 'probe' when this caller may try to take the probe. */
export function decide(c: Circuit, now: number): BreakerDecision | 'probe' {
  switch (c.state) {
    case 'closed':
      return allowed;
    case 'isolated':
      return {
        allowed: false,
        state: 'isolated',
        retryAtMs: null,
        reason: c.reason ? `circuit isolated by hand: ${c.reason}` : 'circuit isolated by hand',
      };
    case 'open':
      if (c.retryAt <= now) return 'probe';
      return { allowed: false, state: 'open', retryAtMs: c.retryAt, reason: `circuit open: ${c.reason}` };
    case 'half_open':
      if (c.probe.until <= now) return 'probe';
      return {
        allowed: false,
        state: 'half_open',
        retryAtMs: Math.min(c.probe.until, now + halfOpenRecheckMs),
        reason: `circuit half-open: a probe call from ${c.probe.owner} is testing the provider`,
      };
  }
}

/**
 * Acquire: either the rejection (or plain allowance) the state implies, or the step that hands the
 * probe to `owner` for `leaseMs` (the break ended, or the last prober's lease expired).
 */
export function takeProbe(
  c: Circuit,
  owner: string,
  now: number,
  leaseMs: number,
): { decision: BreakerDecision; step?: Step } {
  const d = decide(c, now);
  if (d !== 'probe') return { decision: d };
  if (c.state !== 'open' && c.state !== 'half_open') return { decision: allowed };
  const cause =
    c.state === 'open'
      ? `break of ${formatDuration(now - c.openedAt)} ended; ${owner} probes`
      : `probe lease of ${c.probe.owner} expired; ${owner} probes`;
  return {
    decision: { allowed: true, probe: true },
    step: {
      next: {
        state: 'half_open',
        openedAt: c.openedAt,
        opens: c.opens,
        probe: { owner, until: now + leaseMs },
        reason: c.reason,
      },
      cause,
    },
  };
}

/** Opens (from closed, or again after a failed probe) with a break that grows with the opens so far. */
export function open(c: Circuit, now: number, cause: string, settings: BreakerSettings): Step {
  const opens = c.state === 'closed' ? 0 : c.opens;
  return {
    next: {
      state: 'open',
      openedAt: now,
      retryAt: now + breakDurationMs(opens, settings),
      opens: opens + 1,
      reason: cause,
    },
    cause,
  };
}

/**
 * Why a closed breaker opens after a counted failure, or undefined while it stays closed: the failure
 * ratio over the window with enough throughput, or a streak of failures this process saw in a row.
 */
export function tripCause(
  window: WindowCounts,
  streak: number,
  error: { kind: string; message: string },
  settings: BreakerSettings,
): string | undefined {
  const { calls, failures } = window;
  const span = formatDuration(settings.samplingWindowMs);
  const last = `last: ${error.kind}: ${error.message}`;
  if (calls >= settings.minThroughput && failures / calls >= settings.failureRatio) {
    return (
      `${failures} of ${calls} calls failed in the last ${span} ` +
      `(ratio ${(failures / calls).toFixed(2)} >= ${settings.failureRatio}); ${last}`
    );
  }
  // A window full of earlier successes would keep a dead provider "healthy" for most of the
  // window while every call fails: twice minThroughput failures in a row open it as well.
  if (streak >= 2 * settings.minThroughput) {
    return `${streak} calls in a row failed (${failures} of ${calls} in the last ${span}); ${last}`;
  }
  return undefined;
}

/** The counted failure's consequence: open when the breaker is still closed and the rules say so. */
export function trip(
  c: Circuit,
  window: WindowCounts,
  streak: number,
  error: { kind: string; message: string },
  now: number,
  settings: BreakerSettings,
): Step | undefined {
  if (c.state !== 'closed') return undefined;
  const cause = tripCause(window, streak, error, settings);
  return cause === undefined ? undefined : open(c, now, cause, settings);
}

/**
 * The probe's outcome. 'count' when the breaker is no longer half-open (closed by hand meanwhile): the
 * call then counts like any other. Otherwise the step to write, if any.
 */
export function settleProbe(
  c: Circuit,
  owner: string,
  outcome: CallOutcome,
  now: number,
  settings: BreakerSettings,
): 'count' | Step | undefined {
  if (c.state !== 'half_open') return 'count';
  const verdict = breakerVerdict(outcome);
  // The provider answered, whoever holds the lease now: it is healthy enough to close.
  if (verdict === 'success') return { next: closedCircuit, cause: 'probe succeeded' };
  // Another process took the probe over after our lease expired: its outcome decides.
  if (c.probe.owner !== owner) return undefined;
  // A 429 or a cancellation says nothing about health: give the probe up for the next caller.
  if (verdict === 'ignore' || outcome.ok) return expireProbe(c, now);
  return open(c, now, `probe failed: ${outcome.error.kind}: ${outcome.error.message}`, settings);
}

/** Hands back a probe `owner` took but never sent (the job stopped first), for the next caller. */
export function releaseProbe(c: Circuit, owner: string, now: number): Step | undefined {
  if (c.state !== 'half_open' || c.probe.owner !== owner) return undefined;
  return expireProbe(c, now);
}

function expireProbe(c: Extract<Circuit, { state: 'half_open' }>, now: number): Step {
  return { next: { ...c, probe: { owner: c.probe.owner, until: now } }, cause: '' };
}

/** Isolated by hand: open until closed by hand, whatever happens meanwhile. */
export function isolate(c: Circuit, now: number, reason: string): Step {
  return {
    next: {
      state: 'isolated',
      openedAt: c.state === 'closed' ? now : c.openedAt,
      opens: c.state === 'closed' ? 0 : c.opens,
      reason: reason || null,
    },
    cause: `isolated by hand${reason ? `: ${reason}` : ''}`,
  };
}

/** Closed by hand from any state: statistics and break growth start over. */
export function close(): Step {
  return { next: closedCircuit, cause: 'closed by hand' };
}

/** A step is recorded in history (and announced) when the state or the probe's holder changes. */
export function announced(prev: Circuit, next: Circuit): boolean {
  return prev.state !== next.state || probeOwner(prev) !== probeOwner(next);
}

/** Closing forgets the window: a fresh start needs fresh evidence. */
export function resetsWindow(next: Circuit): boolean {
  return next.state === 'closed';
}

function probeOwner(c: Circuit): string | null {
  return c.state === 'half_open' ? c.probe.owner : null;
}

/**
 * The bucket of the window ring that `nowMs` falls in: `start` is the bucket's beginning, `slot` its
 * place in the ring. Counts go to buckets by the backend's clock; a window sums the buckets that began
 * after `nowMs - windowMs`.
 */
export function windowBucket(nowMs: number, windowMs: number): { start: number; slot: number } {
  const bucketMs = bucketLength(windowMs);
  const slots = Math.ceil(windowMs / bucketMs);
  const start = Math.floor(nowMs / bucketMs) * bucketMs;
  return { start, slot: (start / bucketMs) % slots };
}

export function bucketLength(windowMs: number): number {
  return Math.max(1, Math.ceil(windowMs / windowBuckets));
}

export function checkBreakerSettings(s: BreakerSettings): void {
  const fail = (what: string, got: number): never => {
    throw usageError(`breaker ${what}, got ${got}`);
  };
  if (!(s.samplingWindowMs >= 1)) fail('samplingWindowMs must be >= 1 ms', s.samplingWindowMs);
  if (!(s.failureRatio > 0 && s.failureRatio <= 1)) fail('failureRatio must be in (0, 1]', s.failureRatio);
  if (!Number.isInteger(s.minThroughput) || s.minThroughput < 1)
    fail('minThroughput must be an integer >= 1', s.minThroughput);
  if (!(s.breakDurationMs >= 0)) fail('breakDurationMs must be >= 0', s.breakDurationMs);
  if (!(s.maxBreakDurationMs >= s.breakDurationMs))
    fail('maxBreakDurationMs must be >= breakDurationMs', s.maxBreakDurationMs);
  if (!(s.probeLeaseMs >= 1)) fail('probeLeaseMs must be >= 1 ms', s.probeLeaseMs);
}
