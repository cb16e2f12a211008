import type { Clock } from '../core/clock.ts';
import { formatDuration } from '../core/duration.ts';
import { FlashcardsError } from '../core/errors.ts';
import type { HeaderLookup } from '../core/headers.ts';
import type { Db } from '../db/open.ts';
import { hasLimitHeaders, parseRateLimitHeaders, type RateLimitInfo } from './headers.ts';
import { type BucketKind, type BucketPlan, type Plan, pickShards, planBuckets, samePlan } from './layout.ts';
import {
  aimdMinGapMs,
  aimdRate,
  decreasedRate,
  type EffectiveRates,
  effectiveRates,
  exhaustedUntil,
  headerLimits,
  pauseAfter429,
} from './learn.ts';
import { RateMeter } from './meter.ts';
import { type KeyRow, migrateLimiter } from './schema.ts';
import { prepare, type Statements } from './store.ts';

export interface LimiterSettings {
  /** Configured requests per minute; undefined = unknown, learn from the provider. */
  rpm?: number | undefined;
  /** Configured tokens per minute; undefined = unknown. */
  tpm?: number | undefined;
  /** Burst as seconds of budget (default 1). */
  burstSeconds: number;
  shards: number | 'auto';
  /** Largest single request's estimated token cost (auto-shard sizing + refusal). */
  maxRequestTokens: number;
}

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
  /** Books one request (and `tokens`) now; synchronous. Nothing is booked when it fails. */
  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Reservation;
  /** Call for every HTTP response, 429s included, with its rate-limit headers as the client read them. */
  observe(obs: { status: number; info: RateLimitInfo } | { status: number; headers: HeaderLookup }): void;
  /** For the progress line: current effective limits and pause. */
  snapshot(): LimiterSnapshot;
}

export type Reservation =
  | { ok: true; delayMs: number; settle(actualTokens: number): void; cancel(): void }
  | {
      ok: false;
      delayMs: number;
      reason: 'max_wait' | 'paused';
      message: string;
      /** Resolves when asking again before `delayMs` is worth it (the probe's answer came in). */
      wake?: Promise<void>;
    };

/** Learned limits and the pause are re-read at most this often; bucket updates always hit the database. */
const refreshMs = 150;
/** With nothing known about a provider, one request goes first so its headers can set the pace. */
const probeTimeoutMs = 5000;
/** Held requests are woken by the probe's answer; asking again this often is only the fallback. */
const probePollMs = 250;
/**
 * While learning by AIMD, each instance shares its meters this often; a 429's decrease sums the
 * shares written within `ratesFreshMs` (older ones are instances that stopped or moved on), and
 * rows untouched for `ratesKeepMs` are deleted then.
 */
const publishEveryMs = 500;
const ratesFreshMs = 3000;
const ratesKeepMs = 60_000;
/** A 429 before this much shared history answers one opening burst, which says nothing of the rate. */
const minHistoryMs = 1000;
/** Tells apart limiter instances (processes, or several in one process) in limiter_rates. */
let instanceSeq = 0;

const defaultRow = (key: string): KeyRow => ({
  key,
  shards: 1,
  rpm: null,
  rpm_burst: null,
  tpm: null,
  tpm_burst: null,
  configured_rpm: null,
  configured_tpm: null,
  header_rpm: null,
  header_tpm: null,
  header_at: null,
  aimd_rpm: null,
  aimd_at: null,
  paused_until: 0,
  pause_reason: null,
  strikes: 0,
  observed_at: null,
  updated_at: 0,
});

function checkSettings(s: LimiterSettings): void {
  const positive = (name: string, v: number | undefined, optional: boolean): void => {
    if (v === undefined && optional) return;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new FlashcardsError('config', `limiter.${name} must be a number > 0, got ${String(v)}`);
    }
  };
  positive('rpm', s.rpm, true);
  positive('tpm', s.tpm, true);
  positive('burstSeconds', s.burstSeconds, false);
  positive('maxRequestTokens', s.maxRequestTokens, false);
  if (s.shards !== 'auto' && !(Number.isInteger(s.shards) && s.shards >= 1 && s.shards <= 1024)) {
    throw new FlashcardsError(
      'config',
      `limiter.shards must be 'auto' or an integer 1-1024, got ${String(s.shards)}`,
    );
  }
}

/**
 * A limiter for one provider key whose buckets live in the shared state database, so every
 * process using the key spends one budget. Every acquire is one small IMMEDIATE transaction.
 */
export function createLimiter(db: Db, key: string, settings: LimiterSettings, deps: LimiterDeps): Limiter {
  checkSettings(settings);
  if (key === '') throw new FlashcardsError('internal', 'limiter key must not be empty');
  migrateLimiter(db);
  return new SqliteLimiter(db, key, { ...settings }, deps.clock);
}

/** Where a reservation was charged: the shard, the cost in TAT milliseconds, and the TAT right after. */
interface Booked {
  shard: number;
  cost: number;
  after: number;
}

type Booking =
  | { ok: true; now: number; delayMs: number; rpm: Booked | null; tpm: Booked | null }
  | { ok: false; now: number; delayMs: number; pausedBy: string | null };

class SqliteLimiter implements Limiter {
  readonly #db: Db;
  readonly #key: string;
  readonly #settings: LimiterSettings;
  readonly #clock: Clock;
  readonly #sql: Statements;
  /** Requests this process admitted, and responses the provider accepted (not 429). */
  readonly #meter = new RateMeter();
  readonly #accepted = new RateMeter();
  readonly #instance = `${process.pid}.${++instanceSeq}`;
  #publishedAt = Number.NEGATIVE_INFINITY;
  readonly #book: (plan: Plan, a: number, b: number, tokens: number, maxWaitMs: number) => Booking;
  readonly #undo: (rpm: Booked | null, tpm: Booked | null) => void;
  #row: KeyRow;
  #rates: EffectiveRates = { rpm: null, tpm: null, learned: false };
  #plan: Plan = { rpm: null, tpm: null, shards: 1 };
  #readAt = Number.NEGATIVE_INFINITY;
  #observed = false;
  /** The one request allowed out while a provider's limits are unknown; null when none is out. */
  #probe: { since: number; id: number } | null = null;
  #probeSeq = 0;
  #probingSince: number | undefined;
  /** Wakes the requests held back by the probe as soon as it is answered or given back. */
  #probeDone: PromiseWithResolvers<void> | null = null;
  /**
   * Unused estimated tokens of settled requests, by TPM shard, given back in the next booking's
   * transaction rather than in a commit of their own (one commit a request instead of two). A
   * refund held back only makes the bucket look fuller than it is, never emptier.
   */
  readonly #refunds = new Map<number, number>();

  constructor(db: Db, key: string, settings: LimiterSettings, clock: Clock) {
    this.#db = db;
    this.#key = key;
    this.#settings = settings;
    this.#clock = clock;
    this.#sql = prepare(db);
    this.#row = defaultRow(key);
    this.#book = db.transaction(this.#bookTx.bind(this)).immediate;
    this.#undo = db.transaction((rpm: Booked | null, tpm: Booked | null) => {
      const now = clock.now();
      if (rpm !== null) this.#sql.undo.run({ key, kind: 'rpm', ...rpm, now });
      if (tpm !== null && tpm.cost > 0) this.#sql.undo.run({ key, kind: 'tpm', ...tpm, now });
    }).immediate;
    this.#refresh(clock.now(), true);
  }

  reserve(req: { jobId: string; tokens: number }, opts: { maxWaitMs: number }): Reservation {
    this.#refresh(this.#clock.now());
    const plan = this.#plan;
    const tokens = Number.isFinite(req.tokens) && req.tokens > 0 ? req.tokens : 0;
    if (plan.tpm !== null && tokens > plan.tpm.shardBurst) throw this.#tooLarge(tokens, plan.tpm);
    if (plan.rpm === null && plan.tpm === null) return this.#reserveUnlimited(opts.maxWaitMs);

    const [a, b] = pickShards(req.jobId, plan.shards);
    const booking = this.#book(plan, a, b, tokens, opts.maxWaitMs);
    if (!booking.ok) return this.#refusal(booking.delayMs, opts.maxWaitMs, booking.pausedBy);
    this.#meter.record(booking.now + booking.delayMs);
    let done = false;
    const { rpm, tpm } = booking;
    return {
      ok: true,
      delayMs: booking.delayMs,
      settle: (actualTokens) => {
        if (done) return;
        done = true;
        if (plan.tpm === null || tpm === null) return;
        const actual = Number.isFinite(actualTokens) && actualTokens > 0 ? actualTokens : 0;
        const delta = (actual - tokens) * plan.tpm.intervalMs;
        if (delta < 0) this.#refunds.set(tpm.shard, (this.#refunds.get(tpm.shard) ?? 0) + delta);
        // More than estimated is charged at once: other processes must see it before they book.
        else if (delta > 0) this.#adjust('tpm', tpm.shard, delta);
      },
      cancel: () => {
        if (done) return;
        done = true;
        this.#undo(rpm, tpm);
      },
    };
  }

  observe(obs: { status: number; info: RateLimitInfo } | { status: number; headers: HeaderLookup }): void {
    const now = this.#clock.now();
    this.#refresh(now);
    const info = 'info' in obs ? obs.info : parseRateLimitHeaders(obs.headers, now);
    const first = !this.#observed;
    this.#observed = true;
    this.#endProbe();
    const row = this.#row;
    let changed = false;

    const limits = headerLimits(info);
    if (
      (limits.rpm !== undefined && limits.rpm !== row.header_rpm) ||
      (limits.tpm !== undefined && limits.tpm !== row.header_tpm)
    ) {
      this.#sql.learn.run({ key: this.#key, rpm: limits.rpm ?? null, tpm: limits.tpm ?? null, now });
      this.#refresh(now, true);
    } else if (first && row.observed_at === null) {
      this.#sql.markObserved.run({ key: this.#key, now });
      changed = true;
    }
    this.#syncRemaining(now, info);

    if (obs.status === 429) {
      this.#on429(now, info);
      changed = true;
    } else {
      if (obs.status < 400) this.#accepted.record(now);
      const exhausted = exhaustedUntil(info, now, this.#settings.maxRequestTokens);
      if (exhausted !== undefined && exhausted.untilMs > row.paused_until) {
        this.#sql.pauseUntil.run({ key: this.#key, until: exhausted.untilMs, reason: exhausted.reason, now });
        changed = true;
      }
      if (obs.status < 400 && row.strikes > 0) {
        this.#sql.clearStrikes.run(this.#key);
        changed = true;
      }
    }
    if (changed) this.#refresh(now, true);
    if (now - this.#publishedAt >= publishEveryMs && this.#learning()) this.#publishRates(now);
  }

  snapshot(): LimiterSnapshot {
    const now = this.#clock.now();
    this.#refresh(now);
    return {
      rpm: this.#plan.rpm?.rate ?? null,
      tpm: this.#plan.tpm?.rate ?? null,
      pausedUntil: this.#row.paused_until > now ? this.#row.paused_until : null,
      learned: this.#rates.learned,
    };
  }

  /** Runs inside BEGIN IMMEDIATE: the clock is read after the write lock is held, so waiting for it is never counted as idle budget. */
  #bookTx(plan: Plan, a: number, b: number, tokens: number, maxWaitMs: number): Booking {
    const now = this.#clock.now();
    for (const [shard, delta] of this.#refunds) this.#adjust('tpm', shard, delta);
    this.#refunds.clear();
    const pause = this.#sql.pause.get(this.#key);
    const pausedUntil = pause?.paused_until ?? 0;
    let at = Math.max(now, pausedUntil);
    const rpmPick = plan.rpm === null ? null : this.#fuller(plan.rpm, a, b, 1);
    const tpmPick = plan.tpm === null ? null : this.#fuller(plan.tpm, a, b, tokens);
    at = Math.max(at, rpmPick?.conformsAt ?? at, tpmPick?.conformsAt ?? at);
    const delayMs = at - now;
    if (delayMs > maxWaitMs) {
      const paused = pausedUntil >= at && pausedUntil > now;
      return { ok: false, now, delayMs, pausedBy: paused ? (pause?.pause_reason ?? 'rate limited') : null };
    }
    // Both buckets are charged as of the same send time, so a request held back by one bucket
    // does not bunch up with later ones in the other.
    const charge = (kind: BucketKind, shard: number, cost: number): Booked => ({
      shard,
      cost,
      after: this.#sql.take.get({ key: this.#key, kind, shard, at, cost, now }) ?? at + cost,
    });
    return {
      ok: true,
      now,
      delayMs,
      rpm: plan.rpm === null || rpmPick === null ? null : charge('rpm', rpmPick.shard, plan.rpm.intervalMs),
      tpm:
        plan.tpm === null || tpmPick === null
          ? null
          : charge('tpm', tpmPick.shard, tokens * plan.tpm.intervalMs),
    };
  }

  /** Power of two choices: of the job's two shards, the one with the earlier TAT (more tokens left). */
  #fuller(bucket: BucketPlan, a: number, b: number, cost: number): { shard: number; conformsAt: number } {
    const tatA = this.#sql.tat.get(this.#key, bucket.kind, a) ?? 0;
    const tatB = a === b ? tatA : (this.#sql.tat.get(this.#key, bucket.kind, b) ?? 0);
    const [shard, tat] = tatB < tatA ? [b, tatB] : [a, tatA];
    return { shard, conformsAt: tat + cost * bucket.intervalMs - bucket.tauMs };
  }

  #adjust(kind: BucketKind, shard: number, delta: number): void {
    this.#sql.adjust.run({ key: this.#key, kind, shard, delta, now: this.#clock.now() });
  }

  #reserveUnlimited(maxWaitMs: number): Reservation {
    const now = this.#clock.now();
    const delayMs = Math.max(0, this.#row.paused_until - now);
    if (delayMs > maxWaitMs)
      return this.#refusal(delayMs, maxWaitMs, this.#row.pause_reason ?? 'rate limited');
    let probeId = -1;
    if (!this.#observed && this.#row.observed_at === null) {
      this.#probingSince ??= now;
      if (now - this.#probingSince < probeTimeoutMs) {
        if (this.#probe !== null) {
          this.#probeDone ??= Promise.withResolvers<void>();
          return {
            ok: false,
            delayMs: probePollMs,
            reason: 'paused',
            message: `waiting for the first response from ${this.#key} to learn its rate limits`,
            wake: this.#probeDone.promise,
          };
        }
        probeId = ++this.#probeSeq;
        this.#probe = { since: now, id: probeId };
      }
    }
    this.#meter.record(now + delayMs);
    const release = (): void => {
      if (this.#probe?.id === probeId) this.#endProbe();
    };
    return { ok: true, delayMs, settle: release, cancel: release };
  }

  #endProbe(): void {
    this.#probe = null;
    this.#probeDone?.resolve();
    this.#probeDone = null;
  }

  /** The latest send time already booked in the request bucket (now when there is none). */
  #bookedUntil(): number {
    const bucket = this.#plan.rpm;
    if (bucket === null) return 0;
    const tat = this.#sql.maxTat.get(this.#key, 'rpm') ?? null;
    return tat === null ? 0 : tat - bucket.tauMs;
  }

  /**
   * The provider's `remaining` can only lower what our buckets think is left: it catches requests
   * we never counted (the probe sent before any bucket existed, other clients on the same key).
   * It describes the provider when the request arrived; in a saturated run the refill since then
   * and our sends since then cancel out, and a stale, higher value changes nothing.
   */
  #syncRemaining(now: number, info: RateLimitInfo): void {
    const pairs = [
      [this.#plan.rpm, info.remainingRequests],
      [this.#plan.tpm, info.remainingTokens],
    ] as const;
    for (const [bucket, remaining] of pairs) {
      if (bucket === null || remaining === undefined) continue;
      const perShardMs = (remaining / bucket.shards) * bucket.intervalMs;
      if (perShardMs >= bucket.tauMs) continue;
      this.#restartAll(bucket, now + bucket.tauMs - perShardMs, now);
    }
  }

  /** Raises every shard's TAT to at least `floor` (missing rows are full shards, so they are written). */
  #restartAll(bucket: BucketPlan, floor: number, now: number): void {
    this.#sql.raise.run({ key: this.#key, kind: bucket.kind, shards: bucket.shards, floor, now });
  }

  /** True while no limit is configured or reported, so a 429 may set the rate by AIMD. */
  #learning(row: KeyRow = this.#row): boolean {
    return this.#settings.rpm === undefined && row.header_rpm === null;
  }

  #publishRates(now: number): void {
    this.#publishedAt = now;
    this.#sql.publishRates.run({
      key: this.#key,
      process: this.#instance,
      accepted: this.#accepted.perMinute(now),
      admitted: this.#meter.perMinute(now),
      since: Math.min(this.#meter.since ?? now, this.#accepted.since ?? now),
      at: now,
    });
  }

  /**
   * What every instance on the key admitted and got accepted lately (per minute), and since when
   * the oldest of them has been measuring. Each process sees only its share of the key's traffic.
   */
  #sharedRates(now: number): { accepted: number; admitted: number; historyMs: number } {
    this.#sql.dropRates.run({ key: this.#key, before: now - ratesKeepMs });
    this.#publishRates(now);
    const shared = this.#sql.sharedRates.get({ key: this.#key, fresh: now - ratesFreshMs });
    const since = shared?.since ?? now;
    return { accepted: shared?.accepted ?? 0, admitted: shared?.admitted ?? 0, historyMs: now - since };
  }

  #on429(now: number, info: RateLimitInfo): void {
    this.#db
      .transaction(() => {
        const row = this.#sql.keyRow.get(this.#key) ?? defaultRow(this.#key);
        // 429s for requests already in flight when the pause began are the same episode.
        const newEpisode = now >= row.paused_until;
        const strikes = newEpisode ? row.strikes + 1 : row.strikes;
        const pause = pauseAfter429(info, strikes - 1, now, this.#settings.maxRequestTokens);
        const until = newEpisode || pause.source === 'Retry-After' ? now + pause.ms : row.paused_until;
        let aimdRpm = row.aimd_rpm;
        let aimdAt = row.aimd_at;
        const unknown = this.#learning(row);
        // aimd_at is when growth starts: until then, 429s answer requests booked at the old rate.
        const shared =
          unknown && !hasLimitHeaders(info) && (aimdAt === null || now >= aimdAt)
            ? this.#sharedRates(now)
            : null;
        if (shared !== null) {
          const current = aimdRpm !== null && aimdAt !== null ? aimdRate(aimdRpm, aimdAt, now) : null;
          // Before a second of history the meters have seen one opening burst, not a rate (most
          // answers are still in flight): pace at that burst per second rather than cut below it.
          const decreased =
            shared.historyMs >= minHistoryMs
              ? decreasedRate(current, shared.accepted, shared.admitted)
              : shared.admitted > 0
                ? Math.min(current ?? Number.POSITIVE_INFINITY, shared.admitted)
                : null;
          if (decreased !== null) {
            aimdRpm = decreased;
            aimdAt = Math.max(now, until, this.#bookedUntil()) + aimdMinGapMs;
          }
        }
        const reason = `429 from the provider (${pause.source}${strikes > 1 ? `, ${strikes} in a row` : ''})`;
        this.#sql.on429.run({
          key: this.#key,
          until,
          reason,
          strikes,
          aimd_rpm: aimdRpm,
          aimd_at: aimdAt,
          now,
        });
        this.#refresh(now, true);
        // After the pause only one request per shard may go at once: the provider's bucket is
        // empty, and a full burst right at the pause end would trip it again.
        for (const bucket of [this.#plan.rpm, this.#plan.tpm]) {
          if (bucket === null) continue;
          const unit = bucket.kind === 'rpm' ? 1 : this.#settings.maxRequestTokens;
          this.#restartAll(bucket, until + Math.max(0, bucket.tauMs - unit * bucket.intervalMs), now);
        }
      })
      .immediate();
  }

  #refresh(now: number, force = false): void {
    if (!force && now - this.#readAt < refreshMs) return;
    this.#readAt = now;
    this.#row = this.#sql.keyRow.get(this.#key) ?? defaultRow(this.#key);
    this.#rates = effectiveRates({ rpm: this.#settings.rpm, tpm: this.#settings.tpm }, this.#row, now);
    const plan = planBuckets(this.#rates, this.#settings);
    if (!samePlan(plan, this.#plan)) this.#plan = plan;
    if (this.#layoutStale()) this.#writeLayout(now);
  }

  /** The stored layout is only for `limiter status`; rewrite it when it drifts by more than 1%. */
  #layoutStale(): boolean {
    const row = this.#row;
    const off = (stored: number | null, current: number | null | undefined): boolean =>
      (stored === null) !== (current == null) ||
      (stored !== null && current != null && Math.abs(stored - current) > current * 0.01);
    return (
      row.updated_at === 0 ||
      row.shards !== this.#plan.shards ||
      off(row.rpm, this.#plan.rpm?.rate) ||
      off(row.tpm, this.#plan.tpm?.rate) ||
      off(row.configured_rpm, this.#settings.rpm) ||
      off(row.configured_tpm, this.#settings.tpm)
    );
  }

  #writeLayout(now: number): void {
    const { rpm, tpm, shards } = this.#plan;
    this.#sql.layout.run({
      key: this.#key,
      shards,
      rpm: rpm?.rate ?? null,
      rpm_burst: rpm?.burst ?? null,
      tpm: tpm?.rate ?? null,
      tpm_burst: tpm?.burst ?? null,
      configured_rpm: this.#settings.rpm ?? null,
      configured_tpm: this.#settings.tpm ?? null,
      now,
    });
    this.#row = this.#sql.keyRow.get(this.#key) ?? defaultRow(this.#key);
  }

  /** `pausedBy` is the pause reason when the shared pause, not the buckets, is what holds the request. */
  #refusal(delayMs: number, maxWaitMs: number, pausedBy: string | null): Reservation {
    const wait = `${formatDuration(delayMs)} is more than the ${formatDuration(maxWaitMs)} allowed`;
    if (pausedBy !== null) {
      const until = new Date(this.#clock.now() + delayMs).toISOString();
      return {
        ok: false,
        delayMs,
        reason: 'paused',
        message: `${this.#key} is paused until ${until} (${pausedBy}); ${wait}`,
      };
    }
    const limits = [
      this.#plan.rpm ? `${round(this.#plan.rpm.rate)} requests/min` : '',
      this.#plan.tpm ? `${round(this.#plan.tpm.rate)} tokens/min` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return {
      ok: false,
      delayMs,
      reason: 'max_wait',
      message: `the rate limit for ${this.#key} (${limits}) has no room for this request yet; ${wait}`,
    };
  }

  #tooLarge(tokens: number, tpm: BucketPlan): FlashcardsError {
    return new FlashcardsError(
      'config',
      `request needs ~${Math.ceil(tokens)} tokens but the TPM shard burst is ${Math.floor(tpm.shardBurst)}; ` +
        'raise limiter.tpm or burst, or lower max_tokens',
      {
        hint:
          `${this.#key}: ${round(tpm.rate)} tokens/min, burst ${Math.floor(tpm.burst)} over ${tpm.shards} shard(s); ` +
          'a request larger than one shard could never be sent, so it is refused instead of waiting forever',
      },
    );
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
