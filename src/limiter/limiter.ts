import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';
import { Booker, type Reservation } from './booking.ts';
import { KeyState } from './key-state.ts';
import { Learner, type Observation } from './learning.ts';
import { RateMeter } from './meter.ts';
import { Probe } from './probe.ts';
import { checkSettings, type LimiterSettings } from './settings.ts';
import type { LimiterStore } from './store.ts';

export interface LimiterDeps {
  clock: Clock;
}

export interface LimiterSnapshot {
  rpm: number | null;
  tpm: number | null;
  pausedUntil: number | null;
  learned: boolean;
}

export interface Limiter {
  /** Books one request (and `tokens`) now, in one store operation. Nothing is booked when it is refused. */
  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Promise<Reservation>;
  /**
   * Call for every HTTP response, 429s included, with its headers as parseRateLimitHeaders read
   * them, and for an answer what it used (the limiter learns how the provider counts tokens).
   */
  observe(obs: Observation): Promise<void>;
  /** Records the call latency a run sees on this key (for `limiter status`). */
  noteLatency(latency: { p50Ms: number; p75Ms: number }): Promise<void>;
  /** For the progress line: current effective limits and pause (the cached state, re-read when stale). */
  snapshot(): Promise<LimiterSnapshot>;
}

/** Tells apart limiter instances (processes, or several in one process) in the shared meters. */
let instanceSeq = 0;

/**
 * A limiter for one provider key whose buckets live in `store`, so every process using the key
 * spends one budget. Booking (booking.ts) and learning (learning.ts) share one cached view of the
 * key (key-state.ts); the state is read on first use.
 */
export function createLimiter(
  store: LimiterStore,
  key: string,
  settings: LimiterSettings,
  deps: LimiterDeps,
): Limiter {
  checkSettings(settings);
  if (key === '') throw new FlashcardsError('internal', 'limiter key must not be empty');
  const own = { ...settings };
  const { clock } = deps;
  const state = new KeyState(store, key, own, clock);
  const probe = new Probe();
  const admitted = new RateMeter();
  const parts = { store, key, clock, state, probe, admitted };
  const booker = new Booker(parts);
  const learner = new Learner({ ...parts, settings: own, instance: `${process.pid}.${++instanceSeq}` });
  return {
    reserve: (req, opts) => booker.reserve(req, opts),
    observe: (obs) => learner.observe(obs),
    noteLatency: (latency) => store.recordLatency(key, latency),
    async snapshot() {
      await state.refresh();
      const now = clock.now();
      return {
        rpm: state.plan.rpm?.rate ?? null,
        tpm: state.plan.tpm?.rate ?? null,
        pausedUntil: state.row.paused_until > now ? state.row.paused_until : null,
        learned: state.rates.learned,
      };
    },
  };
}
