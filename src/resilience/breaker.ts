import type { Clock } from '../core/clock.ts';
import type { ProviderError } from '../core/errors.ts';
import { type BreakerStatus, toStatus } from './breaker-admin.ts';
import {
  type BreakerDecision,
  type BreakerSettings,
  type BreakerState,
  breakerVerdict,
  type CallOutcome,
  type Circuit,
  checkBreakerSettings,
  close,
  isolate,
  releaseProbe,
  type Step,
  settleProbe,
  takeProbe,
  trip,
  type Verdict,
} from './breaker-machine.ts';
import {
  type BreakerSnapshot,
  type BreakerStore,
  type Changed,
  changeBreaker,
  type Tally,
} from './breaker-store.ts';

export type { BreakerDecision, BreakerSettings, BreakerState, CallOutcome } from './breaker-machine.ts';

/** How long a closed breaker trusts its cached state: bounds how late an isolate from another process is seen. */
export const defaultStateCacheMs = 250;

export interface BreakerTransition {
  from: BreakerState;
  to: BreakerState;
  cause: string;
  at: number;
}

export interface BreakerDeps {
  /** Times the state cache and the batching of successes (the backend keeps its own time for the rules). */
  clock: Clock;
  /** Identifies this process as the holder of a probe lease. */
  ownerId: string;
  onTransition?: ((t: BreakerTransition) => void) | undefined;
  stateCacheMs?: number | undefined;
}

const allowedNow: Promise<BreakerDecision> = Promise.resolve(Object.freeze({ allowed: true, probe: false }));
const done: Promise<void> = Promise.resolve();

/**
 * A circuit breaker with Polly v8 semantics whose state lives in a `BreakerStore`, so every process on
 * the backend shares it. Closed: calls flow and outcomes fill a sliding window; when failures / calls
 * reaches the ratio with enough throughput it opens. Open: calls are rejected until the break ends.
 * Half-open: one probe (a lease, so a crashed prober cannot wedge it); success closes and resets, failure
 * re-opens with a longer break. Isolated: open until closed by hand. The rules are breaker-machine.ts;
 * this class keeps the request path cheap (a cached closed state, successes counted in memory) and
 * announces transitions.
 *
 * Constructed synchronously: the constructor starts `store.ensure(key)` (so `breaker status` lists a
 * run's breaker from its start) and the first operation awaits it, so a failure there surfaces there.
 */
export class CircuitBreaker {
  readonly key: string;
  readonly settings: BreakerSettings;
  readonly #store: BreakerStore;
  readonly #clock: Clock;
  readonly #owner: string;
  readonly #onTransition: ((t: BreakerTransition) => void) | undefined;
  readonly #cacheMs: number;
  /** The last state seen, with its version and when (this process's clock) it was seen. */
  #cached: { circuit: Circuit; version: number; readAt: number } | undefined;
  /** Successes not yet written: at most one cache period's worth, so the hot path rarely writes. */
  #pending = { calls: 0, since: 0 };
  /** Failures in a row this process saw while closed: a total outage opens at once, whatever the window remembers. */
  #failStreak = 0;
  #ready: Promise<void> | undefined;

  constructor(store: BreakerStore, key: string, settings: BreakerSettings, deps: BreakerDeps) {
    checkBreakerSettings(settings);
    this.key = key;
    this.settings = { ...settings };
    this.#store = store;
    this.#clock = deps.clock;
    this.#owner = deps.ownerId;
    this.#onTransition = deps.onTransition;
    this.#cacheMs = deps.stateCacheMs ?? defaultStateCacheMs;
    this.#ready = store.ensure(key);
    // Handled by whichever operation comes first (it awaits and rethrows); no unhandled rejection meanwhile.
    this.#ready.catch(() => {});
  }

  /**
   * May a call go out now? A `probe: true` answer must be handed back to `record` (or `release`). Within
   * one cache period of seeing it closed, answers from memory with an already settled promise.
   */
  acquire(): Promise<BreakerDecision> {
    const now = this.#clock.now();
    const cached = this.#cached;
    if (cached?.circuit.state === 'closed' && now >= cached.readAt && now - cached.readAt < this.#cacheMs)
      return allowedNow;
    return this.#acquire();
  }

  record(outcome: CallOutcome, decision: { probe: boolean }): Promise<void> {
    const verdict = breakerVerdict(outcome);
    if (verdict === 'success') this.#failStreak = 0;
    if (decision.probe) return this.#settleProbe(outcome, verdict);
    return this.#count(outcome, verdict);
  }

  /** Hands back a half-open probe that was never sent (the job stopped first), for the next caller. */
  release(decision: { probe: boolean }): Promise<void> {
    if (!decision.probe) return done;
    return this.#change((s) => releaseProbe(s.circuit, this.#owner, s.now));
  }

  /** Writes successes counted in memory; called on the hot path's own schedule and before reads. */
  flush(): Promise<void> {
    const calls = this.#pending.calls;
    if (calls === 0) return done;
    this.#pending = { calls: 0, since: 0 };
    return this.#tally(calls);
  }

  async status(): Promise<BreakerStatus> {
    await this.flush();
    await this.#started();
    const snapshot = await this.#store.read(this.key, this.settings.samplingWindowMs);
    this.#cache(snapshot.circuit, snapshot.version);
    return toStatus(snapshot);
  }

  /** Opens the breaker until `close()`, from this or any other process. */
  isolate(reason: string): Promise<void> {
    return this.#change((s) => isolate(s.circuit, s.now, reason));
  }

  /** Closes by hand from any state and starts a fresh window. */
  close(): Promise<void> {
    return this.#change(() => close());
  }

  async #acquire(): Promise<BreakerDecision> {
    await this.#started();
    // Successes waiting in memory go out with the read the cache needs anyway: at most one period late.
    const calls = this.#pending.calls;
    this.#pending = { calls: 0, since: 0 };
    const first = calls > 0 ? await this.#recorded({ calls, failures: 0 }) : undefined;
    const r = await changeBreaker(
      this.#store,
      this.key,
      this.settings.samplingWindowMs,
      (s) => {
        const { decision, step } = takeProbe(s.circuit, this.#owner, s.now, this.settings.probeLeaseMs);
        return { value: decision, step };
      },
      first,
    );
    this.#remember(r);
    return r.value;
  }

  #count(outcome: CallOutcome, verdict: Verdict): Promise<void> {
    if (verdict === 'ignore') return done;
    if (outcome.ok || verdict === 'success') {
      // The hot path: successes are counted in memory and written at most once per state-cache
      // period (or with the next failure or state read), so other processes see them within ~250 ms.
      const now = this.#clock.now();
      if (this.#pending.calls === 0) this.#pending.since = now;
      this.#pending.calls++;
      return now - this.#pending.since >= this.#cacheMs ? this.flush() : done;
    }
    return this.#failure(outcome.error);
  }

  async #failure(error: ProviderError): Promise<void> {
    const streak = ++this.#failStreak;
    const successes = this.#pending.calls;
    this.#pending = { calls: 0, since: 0 };
    await this.#started();
    const { kind, message } = error;
    const r = await this.#store.record(
      this.key,
      { calls: successes + 1, failures: 1, error: { kind, message } },
      this.settings.samplingWindowMs,
    );
    if (!r.counted) {
      // Not closed: calls that were in flight when it opened start no new streak.
      this.#failStreak = 0;
      this.#cache(r.snapshot.circuit, r.snapshot.version);
      return;
    }
    const c = await changeBreaker(
      this.#store,
      this.key,
      this.settings.samplingWindowMs,
      (s) => ({ value: undefined, step: trip(s.circuit, s.window, streak, error, s.now, this.settings) }),
      r.snapshot,
    );
    if (c.written) this.#failStreak = 0;
    this.#remember(c);
  }

  async #settleProbe(outcome: CallOutcome, verdict: Verdict): Promise<void> {
    await this.#started();
    const first =
      !outcome.ok && verdict === 'failure'
        ? await this.#recorded({
            calls: 0,
            failures: 0,
            error: { kind: outcome.error.kind, message: outcome.error.message },
          })
        : undefined;
    const r = await changeBreaker(
      this.#store,
      this.key,
      this.settings.samplingWindowMs,
      (s) => {
        const settled = settleProbe(s.circuit, this.#owner, outcome, s.now, this.settings);
        return settled === 'count' ? { value: true } : { value: false, step: settled };
      },
      first,
    );
    this.#remember(r);
    // No longer half-open (closed by hand meanwhile): the call counts like any other.
    if (r.value) await this.#count(outcome, verdict);
  }

  async #tally(calls: number): Promise<void> {
    await this.#started();
    await this.#recorded({ calls, failures: 0 });
  }

  /** Records a tally and keeps what it read back as the cached state. */
  async #recorded(tally: Tally): Promise<BreakerSnapshot> {
    const r = await this.#store.record(this.key, tally, this.settings.samplingWindowMs);
    this.#cache(r.snapshot.circuit, r.snapshot.version);
    return r.snapshot;
  }

  async #change(plan: (s: BreakerSnapshot) => Step | undefined): Promise<void> {
    await this.#started();
    const r = await changeBreaker(this.#store, this.key, this.settings.samplingWindowMs, (s) => ({
      value: undefined,
      step: plan(s),
    }));
    this.#remember(r);
  }

  /** Caches what a change wrote (or the state it found) and announces a transition. */
  #remember(r: Changed<unknown>): void {
    const w = r.written;
    if (!w) {
      this.#cache(r.before.circuit, r.before.version);
      return;
    }
    this.#cache(w.next, w.version);
    if (w.announced)
      this.#onTransition?.({ from: r.before.circuit.state, to: w.next.state, cause: w.cause, at: w.at });
  }

  #cache(circuit: Circuit, version: number): void {
    const now = this.#clock.now();
    const cached = this.#cached;
    // Operations of this process overlap: a read that started before a newer write must not undo it.
    if (cached && version < cached.version && now - cached.readAt < this.#cacheMs) return;
    this.#cached = { circuit, version, readAt: now };
  }

  /** The constructor's ensure, awaited by the first operation only. */
  #started(): Promise<void> | undefined {
    const ready = this.#ready;
    this.#ready = undefined;
    return ready;
  }
}
