import type { Clock } from '../core/clock.ts';
import type { Db } from '../db/open.ts';
import {
  after429,
  ratesFreshMs,
  ratesKeepMs,
  restartsAfter429,
  type SharedRates,
  wantsSharedRates,
} from './after-429.ts';
import {
  type Booking,
  type BookRequest,
  type Charge,
  cancelled,
  charged,
  decideBooking,
  type Restart,
  type ShardTat,
} from './gcra.ts';
import type { BucketKind } from './layout.ts';
import { defaultRow, type KeyRow, migrateLimiter, type TokenAccounting } from './schema.ts';
import type { Layout, LimiterStore, Observed429, RateShare } from './store.ts';

/**
 * The limiter's shared state in state.db (tables in schema.ts) over one connection; creating it
 * applies the limiter's migrations. better-sqlite3 is synchronous: every method does its work at
 * once and returns a settled promise. Each method is one statement or one BEGIN IMMEDIATE
 * transaction, and reads the clock only once the write lock is held, so time spent waiting for
 * another process is never counted as idle budget.
 */
export function sqliteLimiterStore(db: Db, deps: { clock: Clock }): LimiterStore {
  migrateLimiter(db);
  return new SqliteLimiterStore(db, deps.clock);
}

type Params = Record<string, string | number | null>;

function statements(db: Db) {
  return {
    keyRow: db.prepare<[string], KeyRow>('SELECT * FROM limiter_keys WHERE key = ?'),
    // What a booking reads, in one SELECT: the TATs of the shards involved (both kinds) and the pause.
    bookingView: db.prepare<[{ key: string; shards: string }], ViewRow>(
      `SELECT kind, shard, tat, NULL AS reason FROM limiter_shards
        WHERE key = @key AND kind IN ('rpm', 'tpm') AND shard IN (SELECT value FROM json_each(@shards))
       UNION ALL
       SELECT 'pause', 0, paused_until, pause_reason FROM limiter_keys WHERE key = @key`,
    ),
    tats: db.prepare<[{ key: string; shards: string }], ShardTat>(
      `SELECT kind, shard, tat FROM limiter_shards
        WHERE key = @key AND kind IN ('rpm', 'tpm') AND shard IN (SELECT value FROM json_each(@shards))`,
    ),
    maxRpmTat: db
      .prepare<[string], number | null>("SELECT max(tat) FROM limiter_shards WHERE key = ? AND kind = 'rpm'")
      .pluck(),
    putTat: db.prepare<[{ key: string; kind: BucketKind; shard: number; tat: number; now: number }]>(
      `INSERT INTO limiter_shards (key, kind, shard, tat, updated_at) VALUES (@key, @kind, @shard, @tat, @now)
       ON CONFLICT (key, kind, shard) DO UPDATE SET tat = excluded.tat, updated_at = excluded.updated_at`,
    ),
    // `raised` for every shard 0..N-1 in one statement; rows already past the floor are not rewritten.
    raise: db.prepare<[{ key: string; kind: BucketKind; shards: number; floor: number; now: number }]>(
      `INSERT INTO limiter_shards (key, kind, shard, tat, updated_at)
       WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < @shards)
       SELECT @key, @kind, n, @floor, @now FROM s WHERE true
       ON CONFLICT (key, kind, shard) DO UPDATE SET tat = excluded.tat, updated_at = excluded.updated_at
       WHERE tat < excluded.tat`,
    ),
    layout: db.prepare<[Params], KeyRow>(
      `INSERT INTO limiter_keys (key, shards, rpm, rpm_burst, tpm, tpm_burst, configured_rpm, configured_tpm,
         max_request_tokens, updated_at)
       VALUES (@key, @shards, @rpm, @rpm_burst, @tpm, @tpm_burst, @configured_rpm, @configured_tpm,
         @max_request_tokens, @now)
       ON CONFLICT (key) DO UPDATE SET shards = excluded.shards, rpm = excluded.rpm, rpm_burst = excluded.rpm_burst,
         tpm = excluded.tpm, tpm_burst = excluded.tpm_burst, configured_rpm = excluded.configured_rpm,
         configured_tpm = excluded.configured_tpm, max_request_tokens = excluded.max_request_tokens,
         updated_at = excluded.updated_at
       RETURNING *`,
    ),
    learn: db.prepare<[{ key: string; rpm: number | null; tpm: number | null; now: number }], KeyRow>(
      `INSERT INTO limiter_keys (key, header_rpm, header_tpm, header_at, observed_at, updated_at)
       VALUES (@key, @rpm, @tpm, @now, @now, @now)
       ON CONFLICT (key) DO UPDATE SET header_rpm = coalesce(@rpm, header_rpm), header_tpm = coalesce(@tpm, header_tpm),
         header_at = @now, observed_at = coalesce(observed_at, @now), updated_at = @now
       RETURNING *`,
    ),
    markObserved: db.prepare<[{ key: string; now: number }], KeyRow>(
      `INSERT INTO limiter_keys (key, observed_at, updated_at) VALUES (@key, @now, @now)
       ON CONFLICT (key) DO UPDATE SET observed_at = coalesce(observed_at, @now), updated_at = @now
       RETURNING *`,
    ),
    pause: db.prepare<[{ key: string; until: number; reason: string; now: number }], KeyRow>(
      `INSERT INTO limiter_keys (key, paused_until, pause_reason, updated_at) VALUES (@key, @until, @reason, @now)
       ON CONFLICT (key) DO UPDATE SET
         pause_reason = CASE WHEN @until > paused_until THEN @reason ELSE pause_reason END,
         paused_until = max(paused_until, @until), updated_at = @now
       RETURNING *`,
    ),
    tokenAccounting: db.prepare<[{ key: string; accounting: string | null; now: number }], KeyRow>(
      `INSERT INTO limiter_keys (key, token_accounting, updated_at) VALUES (@key, @accounting, @now)
       ON CONFLICT (key) DO UPDATE SET token_accounting = @accounting, updated_at = @now
       RETURNING *`,
    ),
    latency: db.prepare<[{ key: string; p50: number; p75: number; now: number }]>(
      `INSERT INTO limiter_keys (key, latency_p50_ms, latency_p75_ms, latency_at, updated_at)
       VALUES (@key, @p50, @p75, @now, @now)
       ON CONFLICT (key) DO UPDATE SET latency_p50_ms = @p50, latency_p75_ms = @p75, latency_at = @now`,
    ),
    clearStrikes: db.prepare<[string], KeyRow>(
      'UPDATE limiter_keys SET strikes = 0 WHERE key = ? AND strikes > 0 RETURNING *',
    ),
    on429: db.prepare<[Params], KeyRow>(
      `INSERT INTO limiter_keys (key, paused_until, pause_reason, strikes, aimd_rpm, aimd_at, observed_at, updated_at)
       VALUES (@key, @until, @reason, @strikes, @aimd_rpm, @aimd_at, @now, @now)
       ON CONFLICT (key) DO UPDATE SET
         pause_reason = CASE WHEN @until >= paused_until THEN @reason ELSE pause_reason END,
         paused_until = max(paused_until, @until), strikes = @strikes, aimd_rpm = @aimd_rpm, aimd_at = @aimd_at,
         observed_at = coalesce(observed_at, @now), updated_at = @now
       RETURNING *`,
    ),
    publishRates: db.prepare<
      [{ key: string; process: string; accepted: number; admitted: number; since: number; at: number }]
    >(
      `INSERT INTO limiter_rates (key, process, accepted, admitted, since, at)
       VALUES (@key, @process, @accepted, @admitted, @since, @at)
       ON CONFLICT (key, process) DO UPDATE SET accepted = excluded.accepted, admitted = excluded.admitted,
         since = excluded.since, at = excluded.at`,
    ),
    sharedRates: db.prepare<
      [{ key: string; fresh: number }],
      { accepted: number; admitted: number; since: number | null }
    >(
      `SELECT coalesce(sum(accepted), 0) AS accepted, coalesce(sum(admitted), 0) AS admitted, min(since) AS since
       FROM limiter_rates WHERE key = @key AND at >= @fresh`,
    ),
    dropRates: db.prepare<[{ key: string; before: number }]>(
      'DELETE FROM limiter_rates WHERE key = @key AND at < @before',
    ),
  };
}

/** A row of the booking's one SELECT: a shard's TAT, or (kind 'pause') the key's pause. */
interface ViewRow {
  kind: BucketKind | 'pause';
  shard: number;
  tat: number;
  reason: string | null;
}

const shardList = (shards: Iterable<number>): string => JSON.stringify([...new Set(shards)]);

class SqliteLimiterStore implements LimiterStore {
  readonly #clock: Clock;
  readonly #sql: ReturnType<typeof statements>;
  readonly #book: (key: string, req: BookRequest) => Booking;
  readonly #cancel: (key: string, charges: readonly Charge[]) => void;
  readonly #charge: (key: string, kind: BucketKind, shard: number, costMs: number) => void;
  readonly #restart: (key: string, restarts: readonly Restart[]) => void;
  readonly #record429: (key: string, observed: Observed429) => KeyRow;

  constructor(db: Db, clock: Clock) {
    this.#clock = clock;
    this.#sql = statements(db);
    this.#book = db.transaction(this.#bookTx.bind(this)).immediate;
    this.#cancel = db.transaction(this.#cancelTx.bind(this)).immediate;
    this.#charge = db.transaction(this.#chargeTx.bind(this)).immediate;
    this.#restart = db.transaction((key: string, restarts: readonly Restart[]) => {
      const now = clock.now();
      for (const r of restarts) this.#raise(key, r, now);
    }).immediate;
    this.#record429 = db.transaction(this.#record429Tx.bind(this)).immediate;
  }

  async readKey(key: string): Promise<KeyRow | undefined> {
    return this.#sql.keyRow.get(key);
  }

  async writeLayout(key: string, l: Layout): Promise<KeyRow> {
    return this.#row(
      this.#sql.layout.get({
        key,
        shards: l.shards,
        rpm: l.rpm,
        rpm_burst: l.rpmBurst,
        tpm: l.tpm,
        tpm_burst: l.tpmBurst,
        configured_rpm: l.configuredRpm,
        configured_tpm: l.configuredTpm,
        max_request_tokens: l.maxRequestTokens,
        now: this.#clock.now(),
      }),
      key,
    );
  }

  async book(key: string, req: BookRequest): Promise<Booking> {
    return this.#book(key, req);
  }

  async cancel(key: string, charges: readonly Charge[]): Promise<void> {
    if (charges.length > 0) this.#cancel(key, charges);
  }

  async charge(key: string, kind: BucketKind, shard: number, costMs: number): Promise<void> {
    this.#charge(key, kind, shard, costMs);
  }

  async restart(key: string, restarts: readonly Restart[]): Promise<void> {
    if (restarts.length > 0) this.#restart(key, restarts);
  }

  async learnLimits(key: string, limits: { rpm: number | null; tpm: number | null }): Promise<KeyRow> {
    return this.#row(this.#sql.learn.get({ key, ...limits, now: this.#clock.now() }), key);
  }

  async markObserved(key: string): Promise<KeyRow> {
    return this.#row(this.#sql.markObserved.get({ key, now: this.#clock.now() }), key);
  }

  async pause(key: string, forMs: number, reason: string): Promise<KeyRow> {
    const now = this.#clock.now();
    return this.#row(this.#sql.pause.get({ key, until: now + forMs, reason, now }), key);
  }

  async clearStrikes(key: string): Promise<KeyRow> {
    return this.#row(this.#sql.clearStrikes.get(key) ?? this.#sql.keyRow.get(key), key);
  }

  async record429(key: string, observed: Observed429): Promise<KeyRow> {
    return this.#record429(key, observed);
  }

  async publishRates(key: string, share: RateShare): Promise<void> {
    this.#publish(key, share, this.#clock.now());
  }

  async setTokenAccounting(key: string, accounting: TokenAccounting | null): Promise<KeyRow> {
    return this.#row(this.#sql.tokenAccounting.get({ key, accounting, now: this.#clock.now() }), key);
  }

  async recordLatency(key: string, latency: { p50Ms: number; p75Ms: number }): Promise<void> {
    this.#sql.latency.run({ key, p50: latency.p50Ms, p75: latency.p75Ms, now: this.#clock.now() });
  }

  /** decideBooking over one SELECT of the shards involved and the pause; writes only the shards that changed. */
  #bookTx(key: string, req: BookRequest): Booking {
    const now = this.#clock.now();
    const shards = shardList([...req.shards, ...req.refunds.map((r) => r.shard)]);
    let pausedUntil = 0;
    let pauseReason: string | null = null;
    const tats: ShardTat[] = [];
    for (const row of this.#sql.bookingView.all({ key, shards })) {
      if (row.kind === 'pause') {
        pausedUntil = row.tat;
        pauseReason = row.reason;
      } else tats.push({ kind: row.kind, shard: row.shard, tat: row.tat });
    }
    const { booking, writes } = decideBooking({ now, pausedUntil, pauseReason, tats }, req);
    for (const w of writes) this.#sql.putTat.run({ key, ...w, now });
    return booking;
  }

  #cancelTx(key: string, charges: readonly Charge[]): void {
    const now = this.#clock.now();
    const stored = this.#sql.tats.all({ key, shards: shardList(charges.map((c) => c.shard)) });
    for (const c of charges) {
      const tat = stored.find((s) => s.kind === c.kind && s.shard === c.shard)?.tat;
      // A shard reset in the meantime is full already: there is nothing to give back.
      if (tat === undefined) continue;
      this.#sql.putTat.run({
        key,
        kind: c.kind,
        shard: c.shard,
        tat: cancelled(tat, c.costMs, c.after, now),
        now,
      });
    }
  }

  #chargeTx(key: string, kind: BucketKind, shard: number, costMs: number): void {
    const now = this.#clock.now();
    const tat = this.#sql.tats.all({ key, shards: shardList([shard]) }).find((s) => s.kind === kind)?.tat;
    if (tat === undefined) return;
    this.#sql.putTat.run({ key, kind, shard, tat: charged(tat, now, costMs), now });
  }

  #record429Tx(key: string, o: Observed429): KeyRow {
    const now = this.#clock.now();
    const row = this.#sql.keyRow.get(key) ?? defaultRow(key);
    const wants = wantsSharedRates(row, o.info, o.settings.rpm, now);
    const shared = wants ? this.#sharedRates(key, o.share, now) : null;
    const maxRpmTat = wants ? (this.#sql.maxRpmTat.get(key) ?? null) : null;
    const d = after429({ row, info: o.info, nowMs: now, settings: o.settings, shared, maxRpmTat });
    const next = this.#row(
      this.#sql.on429.get({
        key,
        until: d.until,
        reason: d.reason,
        strikes: d.strikes,
        aimd_rpm: d.aimdRpm,
        aimd_at: d.aimdAt,
        now,
      }),
      key,
    );
    for (const r of restartsAfter429(next, o.settings, now, d.until)) this.#raise(key, r, now);
    return next;
  }

  #raise(key: string, r: Restart, now: number): void {
    this.#sql.raise.run({ key, kind: r.kind, shards: r.shards, floor: now + r.aheadMs, now });
  }

  #publish(key: string, share: RateShare, now: number): void {
    this.#sql.publishRates.run({
      key,
      process: share.instance,
      accepted: share.accepted,
      admitted: share.admitted,
      since: now - share.measuringMs,
      at: now,
    });
  }

  /** This instance's share published, stale shares dropped, then the sum over every fresh share. */
  #sharedRates(key: string, share: RateShare, now: number): SharedRates {
    this.#sql.dropRates.run({ key, before: now - ratesKeepMs });
    this.#publish(key, share, now);
    const shared = this.#sql.sharedRates.get({ key, fresh: now - ratesFreshMs });
    const since = shared?.since ?? now;
    return { accepted: shared?.accepted ?? 0, admitted: shared?.admitted ?? 0, historyMs: now - since };
  }

  #row(row: KeyRow | undefined, key: string): KeyRow {
    return row ?? defaultRow(key);
  }
}
