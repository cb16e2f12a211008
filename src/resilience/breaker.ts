import type { Clock } from '../core/clock.ts';
import { formatDuration } from '../core/duration.ts';
import { type ProviderError, usageError } from '../core/errors.ts';
import type { Db } from '../db/open.ts';
import { type BreakerRow, type BreakerState, type BreakerStore, breakerStore } from './breaker-store.ts';

export type { BreakerState } from './breaker-store.ts';

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

/** The window is a ring of this many buckets (Polly does the same); old buckets drop out whole. */
const windowBuckets = 10;

/** How long a closed breaker trusts its cached row: bounds how late an isolate from another process is seen. */
export const defaultStateCacheMs = 250;

/** While another process probes, ask again this soon rather than at the (much later) lease expiry. */
const halfOpenRecheckMs = 1000;

/**
 * `retryAtMs` on a rejection: open, when the break ends (the next probe may start); half_open, when to ask
 * again (another caller's probe is running: at most 1 s, or its lease expiry); isolated, null (until closed
 * by hand).
 */
export type BreakerDecision =
  | { allowed: true; probe: boolean }
  | { allowed: false; state: BreakerState; retryAtMs: number | null; reason: string };

export type CallOutcome = { ok: true } | { ok: false; error: ProviderError };

export interface BreakerTransition {
  from: BreakerState;
  to: BreakerState;
  cause: string;
  at: number;
}

export interface BreakerStatus {
  key: string;
  state: BreakerState;
  /** Counts in the current sampling window (reset when the breaker closes). */
  calls: number;
  failures: number;
  failureRatio: number;
  openedAt: number | null;
  /** open: when the next probe may start; half_open: when the probe lease expires. */
  retryAtMs: number | null;
  consecutiveOpens: number;
  reason: string | null;
  lastError: { kind: string; message: string; at: number } | null;
  probe: { owner: string; until: number } | null;
  lastActiveAt: number;
}

export interface BreakerDeps {
  clock: Clock;
  /** Identifies this process as the holder of a probe lease. */
  ownerId: string;
  onTransition?: ((t: BreakerTransition) => void) | undefined;
  stateCacheMs?: number | undefined;
}

/**
 * How an outcome reads as evidence of the provider's health. Only server, timeout and network failures
 * mean "the provider is down"; a 429 belongs to the limiter, a cancellation says nothing, and auth, quota,
 * bad requests and invalid output all prove the provider answered.
 */
export function breakerVerdict(outcome: CallOutcome): 'success' | 'failure' | 'ignore' {
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

/**
 * A circuit breaker with Polly v8 semantics whose state lives in state.db, so every process on the data
 * directory shares it. Closed: calls flow and outcomes fill a sliding window; when failures / calls reaches
 * the ratio with enough throughput it opens. Open: calls are rejected until the break ends. Half-open: one
 * probe (a lease, so a crashed prober cannot wedge it); success closes and resets, failure re-opens with a
 * longer break. Isolated: open until closed by hand.
 */
export class CircuitBreaker {
  readonly key: string;
  readonly settings: BreakerSettings;
  readonly #store: BreakerStore;
  readonly #clock: Clock;
  readonly #owner: string;
  readonly #onTransition: ((t: BreakerTransition) => void) | undefined;
  readonly #cacheMs: number;
  readonly #bucketMs: number;
  readonly #slots: number;
  #cached: { row: BreakerRow; readAt: number } | undefined;
  /** Successes not yet written: at most one cache period's worth, so the hot path rarely writes. */
  #pending = { start: -1, slot: 0, calls: 0, since: 0 };
  /** Failures in a row this process saw while closed: a total outage opens at once, whatever the window remembers. */
  #failStreak = 0;

  constructor(db: Db, key: string, settings: BreakerSettings, deps: BreakerDeps) {
    checkBreakerSettings(settings);
    this.key = key;
    this.settings = { ...settings };
    this.#store = breakerStore(db);
    this.#clock = deps.clock;
    this.#owner = deps.ownerId;
    this.#onTransition = deps.onTransition;
    this.#cacheMs = deps.stateCacheMs ?? defaultStateCacheMs;
    this.#bucketMs = Math.max(1, Math.ceil(settings.samplingWindowMs / windowBuckets));
    this.#slots = Math.ceil(settings.samplingWindowMs / this.#bucketMs);
    this.#store.ensure(key, this.#clock.now());
  }

  /** May a call go out now? A `probe: true` answer must be handed back to `record` with the outcome. */
  acquire(): BreakerDecision {
    const now = this.#clock.now();
    const cached = this.#cached;
    if (cached?.row.state === 'closed' && now >= cached.readAt && now - cached.readAt < this.#cacheMs)
      return allowed;
    const decision = decide(this.#read(now), now);
    return decision === 'probe' ? this.#takeProbe(now) : decision;
  }

  record(outcome: CallOutcome, decision: { probe: boolean }): void {
    const now = this.#clock.now();
    const verdict = breakerVerdict(outcome);
    if (verdict === 'success') this.#failStreak = 0;
    if (decision.probe && this.#settleProbe(outcome, verdict, now)) return;
    if (verdict === 'ignore') return;
    const start = Math.floor(now / this.#bucketMs) * this.#bucketMs;
    const slot = (start / this.#bucketMs) % this.#slots;
    if (outcome.ok || verdict === 'success') {
      // The hot path: successes are counted in memory and written at most once per state-cache
      // period (or when the bucket changes), so other processes see them within ~250 ms.
      if (this.#pending.start !== start) this.#flushSuccesses();
      if (this.#pending.calls === 0) this.#pending = { start, slot, calls: 0, since: now };
      this.#pending.calls++;
      if (now - this.#pending.since >= this.#cacheMs) this.#flushSuccesses();
      return;
    }
    const error = outcome.error;
    const streak = ++this.#failStreak;
    const events = this.#store.immediate(() => {
      this.#flushSuccesses();
      this.#store.noteError(this.key, error.kind, error.message, now);
      if (!this.#store.count(this.key, slot, start, 1, 1)) {
        // Not closed: calls that were in flight when it opened start no new streak.
        this.#failStreak = 0;
        this.#cached = undefined;
        return [];
      }
      const { calls, failures } = this.#store.window(this.key, now - this.settings.samplingWindowMs);
      const byRatio = calls >= this.settings.minThroughput && failures / calls >= this.settings.failureRatio;
      // A window full of earlier successes would keep a dead provider "healthy" for most of the
      // window while every call fails: twice minThroughput failures in a row open it as well.
      const byStreak = streak >= 2 * this.settings.minThroughput;
      if (!byRatio && !byStreak) return [];
      const row = this.#store.read(this.key);
      if (row?.state !== 'closed') return [];
      this.#failStreak = 0;
      const cause = byRatio
        ? `${failures} of ${calls} calls failed in the last ${formatDuration(this.settings.samplingWindowMs)} ` +
          `(ratio ${(failures / calls).toFixed(2)} >= ${this.settings.failureRatio}); last: ${error.kind}: ${error.message}`
        : `${streak} calls in a row failed (${failures} of ${calls} in the last ${formatDuration(this.settings.samplingWindowMs)}); last: ${error.kind}: ${error.message}`;
      return this.#apply(row, this.#opened(row, now, cause), cause, now);
    });
    this.#emit(events);
  }

  /** Writes successes counted in memory; called on the hot path's own schedule and before reads. */
  flush(): void {
    this.#flushSuccesses();
  }

  #flushSuccesses(): void {
    const p = this.#pending;
    if (p.calls === 0) return;
    this.#pending = { start: -1, slot: 0, calls: 0, since: 0 };
    if (!this.#store.count(this.key, p.slot, p.start, p.calls, 0)) this.#cached = undefined;
  }

  status(): BreakerStatus {
    this.#flushSuccesses();
    const now = this.#clock.now();
    return toStatus(this.#read(now), this.#store, this.settings.samplingWindowMs, now);
  }

  /** Opens the breaker until `close()`, from this or any other process. */
  isolate(reason: string): void {
    this.#change(
      (row, now) => ({
        ...row,
        state: 'isolated',
        opened_at: row.state === 'closed' ? now : (row.opened_at ?? now),
        retry_at: null,
        probe_owner: null,
        probe_until: null,
        reason: reason || null,
        updated_at: now,
      }),
      `isolated by hand${reason ? `: ${reason}` : ''}`,
    );
  }

  /** Closes by hand from any state and starts a fresh window. */
  close(): void {
    this.#change((row, now) => closedRow(row, now), 'closed by hand');
  }

  #read(now: number): BreakerRow {
    let row = this.#store.read(this.key);
    if (!row) {
      // Someone deleted the row (or the state db was replaced): start closed again.
      this.#store.ensure(this.key, now);
      row = this.#store.read(this.key) as BreakerRow;
    }
    this.#cached = { row, readAt: now };
    return row;
  }

  #takeProbe(now: number): BreakerDecision {
    let decision: BreakerDecision = allowed;
    const events = this.#store.immediate(() => {
      const row = this.#read(now);
      const d = decide(row, now);
      if (d !== 'probe') {
        decision = d;
        return [];
      }
      decision = { allowed: true, probe: true };
      const cause =
        row.state === 'open'
          ? `break of ${formatDuration(now - (row.opened_at ?? now))} ended; ${this.#owner} probes`
          : `probe lease of ${row.probe_owner ?? '?'} expired; ${this.#owner} probes`;
      return this.#apply(
        row,
        {
          ...row,
          state: 'half_open',
          probe_owner: this.#owner,
          probe_until: now + this.settings.probeLeaseMs,
          updated_at: now,
        },
        cause,
        now,
      );
    });
    this.#emit(events);
    return decision;
  }

  /** Hands back a half-open probe that was never sent (the job stopped first), for the next caller. */
  release(decision: { probe: boolean }): void {
    if (!decision.probe) return;
    const now = this.#clock.now();
    this.#store.immediate(() => {
      const row = this.#read(now);
      if (row.state === 'half_open' && row.probe_owner === this.#owner) {
        this.#apply(row, { ...row, probe_until: now, updated_at: now }, '', now);
      }
      return [];
    });
  }

  /** Handles the probe's outcome; false when the breaker is no longer half-open and the call counts normally. */
  #settleProbe(outcome: CallOutcome, verdict: 'success' | 'failure' | 'ignore', now: number): boolean {
    let handled = true;
    const events = this.#store.immediate(() => {
      if (!outcome.ok && verdict === 'failure') {
        this.#store.noteError(this.key, outcome.error.kind, outcome.error.message, now);
      }
      const row = this.#read(now);
      if (row.state !== 'half_open') {
        handled = false;
        return [];
      }
      // The provider answered, whoever holds the lease now: it is healthy enough to close.
      if (outcome.ok || verdict === 'success')
        return this.#apply(row, closedRow(row, now), 'probe succeeded', now);
      // Another process took the probe over after our lease expired: its outcome decides.
      if (row.probe_owner !== this.#owner) return [];
      if (verdict === 'ignore') {
        // A 429 or a cancellation says nothing about health: give the probe up for the next caller.
        this.#apply(row, { ...row, probe_until: now, updated_at: now }, '', now);
        return [];
      }
      const cause = `probe failed: ${outcome.error.kind}: ${outcome.error.message}`;
      return this.#apply(row, this.#opened(row, now, cause), cause, now);
    });
    this.#emit(events);
    return handled;
  }

  #opened(row: BreakerRow, now: number, cause: string): BreakerRow {
    return {
      ...row,
      state: 'open',
      opened_at: now,
      retry_at: now + breakDurationMs(row.consecutive_opens, this.settings),
      consecutive_opens: row.consecutive_opens + 1,
      probe_owner: null,
      probe_until: null,
      reason: cause,
      updated_at: now,
    };
  }

  #change(next: (row: BreakerRow, now: number) => BreakerRow, cause: string): void {
    const now = this.#clock.now();
    const events = this.#store.immediate(() => {
      const row = this.#read(now);
      return this.#apply(row, next(row, now), cause, now);
    });
    this.#emit(events);
  }

  /** Writes `next` (inside the caller's transaction) and returns the transition to announce after commit. */
  #apply(row: BreakerRow, next: BreakerRow, cause: string, now: number): BreakerTransition[] {
    this.#store.write(next);
    if (next.state === 'closed') this.#store.resetWindow(this.key);
    this.#cached = { row: next, readAt: now };
    if (row.state === next.state && row.probe_owner === next.probe_owner) return [];
    this.#store.addTransition(this.key, now, row.state, next.state, cause);
    return [{ from: row.state, to: next.state, cause, at: now }];
  }

  #emit(events: BreakerTransition[]): void {
    for (const t of events) this.#onTransition?.(t);
  }
}

function closedRow(row: BreakerRow, now: number): BreakerRow {
  return {
    ...row,
    state: 'closed',
    opened_at: null,
    retry_at: null,
    consecutive_opens: 0,
    probe_owner: null,
    probe_until: null,
    reason: null,
    updated_at: now,
  };
}

/** The decision a row implies now, or 'probe' when this caller may try to take the probe lease. */
function decide(row: BreakerRow, now: number): BreakerDecision | 'probe' {
  switch (row.state) {
    case 'closed':
      return allowed;
    case 'isolated':
      return {
        allowed: false,
        state: 'isolated',
        retryAtMs: null,
        reason: row.reason ? `circuit isolated by hand: ${row.reason}` : 'circuit isolated by hand',
      };
    case 'open': {
      const retryAt = row.retry_at ?? now;
      if (retryAt <= now) return 'probe';
      return {
        allowed: false,
        state: 'open',
        retryAtMs: retryAt,
        reason: `circuit open: ${row.reason ?? '?'}`,
      };
    }
    case 'half_open': {
      const until = row.probe_until ?? now;
      if (until <= now) return 'probe';
      return {
        allowed: false,
        state: 'half_open',
        retryAtMs: Math.min(until, now + halfOpenRecheckMs),
        reason: `circuit half-open: a probe call from ${row.probe_owner ?? '?'} is testing the provider`,
      };
    }
  }
}

function toStatus(
  row: BreakerRow & { last_active?: number },
  store: BreakerStore,
  windowMs: number,
  now: number,
): BreakerStatus {
  // While open the window still holds the calls that tripped it (it resets on close), which is what people want to see.
  const { calls, failures } = store.window(row.key, now - windowMs);
  return {
    key: row.key,
    state: row.state,
    calls,
    failures,
    failureRatio: calls === 0 ? 0 : failures / calls,
    openedAt: row.opened_at,
    retryAtMs: row.state === 'open' ? row.retry_at : row.state === 'half_open' ? row.probe_until : null,
    consecutiveOpens: row.consecutive_opens,
    reason: row.reason,
    lastError:
      row.last_error_kind === null || row.last_error_at === null
        ? null
        : { kind: row.last_error_kind, message: row.last_error_message ?? '', at: row.last_error_at },
    probe:
      row.state === 'half_open' && row.probe_owner !== null && row.probe_until !== null
        ? { owner: row.probe_owner, until: row.probe_until }
        : null,
    lastActiveAt: row.last_active ?? Math.max(row.updated_at, row.last_error_at ?? 0),
  };
}

/** Every breaker on this database, most recently active first (for `breaker status`). */
export function listBreakers(
  db: Db,
  nowMs: number,
  samplingWindowMs = defaultBreakerSettings.samplingWindowMs,
): BreakerStatus[] {
  const store = breakerStore(db);
  return store
    .list()
    .map((row) => toStatus(row, store, samplingWindowMs, nowMs))
    .sort((a, b) => b.lastActiveAt - a.lastActiveAt || a.key.localeCompare(b.key));
}

export interface BreakerHistoryEntry {
  key: string;
  at: number;
  from: BreakerState;
  to: BreakerState;
  cause: string;
}

/** The most recent transitions of every breaker, newest first. */
export function breakerHistory(db: Db, limit: number): BreakerHistoryEntry[] {
  return breakerStore(db)
    .history(limit)
    .map((t) => ({ key: t.key, at: t.at, from: t.from_state, to: t.to_state, cause: t.cause }));
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
