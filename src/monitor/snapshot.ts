import type {
  BatchCounts,
  BatchOverview,
  BatchStatus,
  ItemFailure,
  JobTotals,
  RunInfo,
} from '../batch/store.ts';
import type { CacheStats } from '../cache/admin.ts';
import { keyStatuses } from '../limiter/status.ts';
import type { StoredKey } from '../limiter/store.ts';
import type { BreakerStatus } from '../resilience/breaker-admin.ts';
import type { BreakerState } from '../resilience/breaker-machine.ts';

/**
 * What `flashcards monitor` shows, as plain values: `MonitorReads` is what one look at the shared
 * state returns (collect.ts), `buildSnapshot` turns it, with the finished-item counts seen on
 * earlier looks (`RateHistory`), into a `MonitorSnapshot` the renderers draw. Everything here is
 * pure: times come in with the reads, so tests drive it with a FakeClock's readings.
 */

/** One batch that is loading or running, as read. */
export interface BatchReads {
  overview: BatchOverview;
  counts: BatchCounts;
  totals: JobTotals;
  /** Live run registrations, oldest first (WorkQueue.runs). */
  runs: RunInfo[];
  /** The first failed items, in input order (0-based item numbers, as stored). */
  failures: ItemFailure[];
}

export interface MonitorReads {
  /** The backend's time at the look (Redis: the server's, as estimated; SQLite: this host's clock). */
  now: number;
  store: { kind: 'sqlite' | 'redis'; where: string };
  /** Batches in `loading` or `running` state, newest first. */
  batches: BatchReads[];
  /** LimiterAdmin.read(): every key's stored state, and the limiter's own time. */
  limiter: { now: number; keys: StoredKey[] };
  breakers: BreakerStatus[];
  /** The sampling window the breakers' counts cover. */
  breakerWindowMs: number;
  /** CacheAdmin.stats(); null when not read (no cache, or not read on this look). */
  cache: CacheStats | null;
}

/** One sample of a batch's finished items (done + failed), for its rate. */
export interface RateSample {
  at: number;
  finished: number;
}

/** Samples per batch id, oldest first, each list within the rate window of its newest. */
export type RateHistory = Readonly<Record<string, readonly RateSample[]>>;

/** How far back the rate looks: long enough to smooth bursts, short enough to follow a change. */
export const RATE_WINDOW_MS = 60_000;

export interface RunView {
  owner: string;
  host: string;
  /** null when the owner id does not name one (not host:pid:nonce). */
  pid: number | null;
  exclusive: boolean;
  startedAt: number;
  aliveUntil: number;
}

export interface BatchView {
  id: string;
  input: string;
  model: string;
  pipeline: string;
  status: BatchStatus;
  total: number;
  done: number;
  failed: number;
  pending: number;
  /** Pending items under a live lease: being worked on now. */
  inFlight: number;
  requests: number;
  tokens: number;
  /** Jobs answered from the response cache. */
  cachedJobs: number;
  runs: RunView[];
  /** Items finished (done or failed) per minute over the last RATE_WINDOW_MS; null until two looks apart. */
  ratePerMin: number | null;
  /** Time left at that rate; null without a rate, or when the rate is 0 and items remain. */
  etaMs: number | null;
  /** The first failed items, numbered from 1 as in the input. */
  failures: ItemFailure[];
}

export interface BucketView {
  kind: 'rpm' | 'tpm';
  /** The rate the limiter paces at now, per minute. */
  rate: number;
  burst: number;
  /** Units that could be spent now, over every shard. */
  available: number;
  /** The configured limit, when one was set (null: learned or the default). */
  configured: number | null;
}

export interface LimiterKeyView {
  key: string;
  buckets: BucketView[];
  /** Limits the provider's headers reported. */
  providerRpm: number | null;
  providerTpm: number | null;
  /** The request rate learned from 429s without headers. */
  learnedRpm: number | null;
  pausedUntil: number | null;
  pauseReason: string | null;
  updatedAt: number;
}

export interface BreakerView {
  key: string;
  state: BreakerState;
  failureRatio: number;
  calls: number;
  failures: number;
  windowMs: number;
  /** open: when a probe may go; half_open: when the probe's lease ends. */
  retryAt: number | null;
  reason: string | null;
  lastError: { kind: string; message: string; at: number } | null;
}

export interface CacheView {
  /** Over the cache's recent runs (CacheAdmin.stats). */
  hits: number;
  misses: number;
  /** hits / (hits + misses); null before any lookup. */
  hitRatio: number | null;
  entries: number;
  live: number;
}

export interface MonitorSnapshot {
  at: number;
  store: { kind: 'sqlite' | 'redis'; where: string };
  batches: BatchView[];
  limiter: LimiterKeyView[];
  breakers: BreakerView[];
  cache: CacheView | null;
}

/**
 * The history with this look's samples added: one per batch read, older samples dropped once
 * a newer one already spans the window, and batches no longer read forgotten.
 */
export function recordSamples(
  history: RateHistory,
  reads: MonitorReads,
  windowMs = RATE_WINDOW_MS,
): RateHistory {
  const next: Record<string, RateSample[]> = {};
  for (const b of reads.batches) {
    const id = b.overview.batch.id;
    const sample = { at: reads.now, finished: b.overview.done + b.overview.failed };
    const kept = (history[id] ?? []).filter((s) => s.at < sample.at);
    kept.push(sample);
    // Keep the newest sample at or beyond the window's start, so the rate always spans it.
    let from = 0;
    while (from + 1 < kept.length && kept[from + 1]!.at <= sample.at - windowMs) from++;
    next[id] = kept.slice(from);
  }
  return next;
}

/** Items per minute between the oldest and newest samples; null with fewer than two. */
export function ratePerMinute(samples: readonly RateSample[] | undefined): number | null {
  const first = samples?.[0];
  const last = samples?.at(-1);
  if (!first || !last || last.at <= first.at) return null;
  // A batch retried (failed items queued again) counts fewer finished items: no negative rate.
  return (Math.max(0, last.finished - first.finished) * 60_000) / (last.at - first.at);
}

/** Time to finish `remaining` items at `perMin`; 0 when none remain. */
export function etaMs(remaining: number, perMin: number | null): number | null {
  if (remaining <= 0) return 0;
  if (perMin === null || perMin <= 0) return null;
  return Math.round((remaining / perMin) * 60_000);
}

/** host and pid out of an owner id `host:pid:nonce` (owner.ts); a host name has no colon. */
export function ownerParts(owner: string): { host: string; pid: number | null } {
  const parts = owner.split(':');
  if (parts.length < 3) return { host: owner, pid: null };
  const pid = Number(parts[parts.length - 2]);
  return {
    host: parts.slice(0, -2).join(':'),
    pid: Number.isInteger(pid) && pid > 0 ? pid : null,
  };
}

function batchView(b: BatchReads, history: RateHistory): BatchView {
  const { batch } = b.overview;
  const rate = ratePerMinute(history[batch.id]);
  return {
    id: batch.id,
    input: batch.inputName,
    model: batch.model,
    pipeline: batch.pipeline,
    status: batch.status,
    total: b.counts.total,
    done: b.counts.done,
    failed: b.counts.failed,
    pending: b.counts.pending,
    inFlight: b.counts.leased,
    requests: b.totals.requests,
    tokens: b.totals.promptTokens + b.totals.completionTokens,
    cachedJobs: b.totals.cachedJobs,
    runs: b.runs.map((r) => ({ ...r, ...ownerParts(r.owner) })),
    ratePerMin: rate,
    etaMs: etaMs(b.counts.pending, rate),
    failures: b.failures.map((f) => ({ ...f, item: f.item + 1 })),
  };
}

function limiterViews(limiter: MonitorReads['limiter']): LimiterKeyView[] {
  return keyStatuses(limiter.keys, limiter.now).map((k) => ({
    key: k.key,
    buckets: k.buckets.map((b) => ({
      kind: b.kind,
      rate: b.rate,
      burst: b.burst,
      available: b.available,
      configured: b.configured,
    })),
    providerRpm: k.provider.rpm,
    providerTpm: k.provider.tpm,
    learnedRpm: k.aimd?.rpm ?? null,
    pausedUntil: k.pausedUntil,
    pauseReason: k.pauseReason,
    updatedAt: k.updatedAt,
  }));
}

function breakerView(s: BreakerStatus, windowMs: number): BreakerView {
  return {
    key: s.key,
    state: s.state,
    failureRatio: s.failureRatio,
    calls: s.calls,
    failures: s.failures,
    windowMs,
    retryAt: s.retryAtMs,
    reason: s.reason,
    lastError: s.lastError,
  };
}

function cacheView(stats: CacheStats): CacheView {
  const lookups = stats.hits + stats.misses;
  return {
    hits: stats.hits,
    misses: stats.misses,
    hitRatio: lookups === 0 ? null : stats.hits / lookups,
    entries: stats.entries,
    live: stats.live,
  };
}

/** One look as the renderers draw it; `history` should already hold this look's samples (recordSamples). */
export function buildSnapshot(reads: MonitorReads, history: RateHistory = {}): MonitorSnapshot {
  return {
    at: reads.now,
    store: reads.store,
    batches: reads.batches.map((b) => batchView(b, history)),
    limiter: limiterViews(reads.limiter),
    breakers: reads.breakers.map((s) => breakerView(s, reads.breakerWindowMs)),
    cache: reads.cache === null ? null : cacheView(reads.cache),
  };
}

/** Nothing to show: no batch under way, no limiter key, no breaker, no cache entry or lookup. */
export function isEmpty(s: MonitorSnapshot): boolean {
  return (
    s.batches.length === 0 &&
    s.limiter.length === 0 &&
    s.breakers.length === 0 &&
    (s.cache === null || (s.cache.entries === 0 && s.cache.hits + s.cache.misses === 0))
  );
}
