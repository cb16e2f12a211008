import type { Statement } from 'better-sqlite3';
import type { Db } from '../db/open.ts';
import type { BucketKind } from './layout.ts';
import type { KeyRow } from './schema.ts';

/**
 * Every statement the limiter runs, prepared once per connection. Each write is a single
 * statement; the limiter groups the few that must agree into IMMEDIATE transactions.
 */
export interface Statements {
  keyRow: Statement<[string], KeyRow>;
  pause: Statement<[string], { paused_until: number; pause_reason: string | null }>;
  tat: Statement<[string, BucketKind, number], number>;
  maxTat: Statement<[string, BucketKind], number | null>;
  take: Statement<
    [{ key: string; kind: BucketKind; shard: number; at: number; cost: number; now: number }],
    number
  >;
  undo: Statement<
    [{ key: string; kind: BucketKind; shard: number; cost: number; after: number; now: number }]
  >;
  adjust: Statement<[{ key: string; kind: BucketKind; shard: number; delta: number; now: number }]>;
  raise: Statement<[{ key: string; kind: BucketKind; shards: number; floor: number; now: number }]>;
  layout: Statement<[Record<string, string | number | null>]>;
  learn: Statement<[{ key: string; rpm: number | null; tpm: number | null; now: number }]>;
  markObserved: Statement<[{ key: string; now: number }]>;
  pauseUntil: Statement<[{ key: string; until: number; reason: string; now: number }]>;
  clearStrikes: Statement<[string]>;
  on429: Statement<[Record<string, string | number | null>]>;
  publishRates: Statement<
    [{ key: string; process: string; accepted: number; admitted: number; since: number; at: number }]
  >;
  sharedRates: Statement<
    [{ key: string; fresh: number }],
    { accepted: number; admitted: number; since: number | null }
  >;
  dropRates: Statement<[{ key: string; before: number }]>;
}

export function prepare(db: Db): Statements {
  return {
    keyRow: db.prepare<[string], KeyRow>('SELECT * FROM limiter_keys WHERE key = ?'),
    pause: db.prepare<[string], { paused_until: number; pause_reason: string | null }>(
      'SELECT paused_until, pause_reason FROM limiter_keys WHERE key = ?',
    ),
    tat: db
      .prepare<[string, BucketKind, number], number>(
        'SELECT tat FROM limiter_shards WHERE key = ? AND kind = ? AND shard = ?',
      )
      .pluck(),
    maxTat: db
      .prepare<[string, BucketKind], number | null>(
        'SELECT max(tat) FROM limiter_shards WHERE key = ? AND kind = ?',
      )
      .pluck(),
    // GCRA: the shard's TAT moves to max(TAT, send time) + cost; a missing row is a full shard.
    take: db
      .prepare<
        [{ key: string; kind: BucketKind; shard: number; at: number; cost: number; now: number }],
        number
      >(
        `INSERT INTO limiter_shards (key, kind, shard, tat, updated_at) VALUES (@key, @kind, @shard, @at + @cost, @now)
         ON CONFLICT (key, kind, shard) DO UPDATE SET tat = max(tat, @at) + @cost, updated_at = @now
         RETURNING tat`,
      )
      .pluck(),
    // Cancel (golang.org/x/time/rate semantics): give back only what later reservations have not
    // been promised already (TAT - TAT right after this booking), never below now.
    undo: db.prepare(
      `UPDATE limiter_shards SET tat = max(@now, tat - max(0, @cost - (tat - @after))), updated_at = @now
       WHERE key = @key AND kind = @kind AND shard = @shard`,
    ),
    // Refunds move the TAT back but never below now (a full shard); charges add to max(TAT, now).
    adjust: db.prepare(
      `UPDATE limiter_shards
       SET tat = max(@now, CASE WHEN @delta < 0 THEN tat + @delta ELSE max(tat, @now) + @delta END), updated_at = @now
       WHERE key = @key AND kind = @kind AND shard = @shard`,
    ),
    // Every shard 0..N-1 to at least @floor in one statement; rows already past it are not rewritten.
    raise: db.prepare(
      `INSERT INTO limiter_shards (key, kind, shard, tat, updated_at)
       WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < @shards)
       SELECT @key, @kind, n, @floor, @now FROM s WHERE true
       ON CONFLICT (key, kind, shard) DO UPDATE SET tat = excluded.tat, updated_at = excluded.updated_at
       WHERE tat < excluded.tat`,
    ),
    layout: db.prepare(
      `INSERT INTO limiter_keys (key, shards, rpm, rpm_burst, tpm, tpm_burst, configured_rpm, configured_tpm, updated_at)
       VALUES (@key, @shards, @rpm, @rpm_burst, @tpm, @tpm_burst, @configured_rpm, @configured_tpm, @now)
       ON CONFLICT (key) DO UPDATE SET shards = excluded.shards, rpm = excluded.rpm, rpm_burst = excluded.rpm_burst,
         tpm = excluded.tpm, tpm_burst = excluded.tpm_burst, configured_rpm = excluded.configured_rpm,
         configured_tpm = excluded.configured_tpm, updated_at = excluded.updated_at`,
    ),
    learn: db.prepare(
      `INSERT INTO limiter_keys (key, header_rpm, header_tpm, header_at, observed_at, updated_at)
       VALUES (@key, @rpm, @tpm, @now, @now, @now)
       ON CONFLICT (key) DO UPDATE SET header_rpm = coalesce(@rpm, header_rpm), header_tpm = coalesce(@tpm, header_tpm),
         header_at = @now, observed_at = coalesce(observed_at, @now), updated_at = @now`,
    ),
    markObserved: db.prepare(
      `INSERT INTO limiter_keys (key, observed_at, updated_at) VALUES (@key, @now, @now)
       ON CONFLICT (key) DO UPDATE SET observed_at = coalesce(observed_at, @now), updated_at = @now`,
    ),
    pauseUntil: db.prepare(
      `INSERT INTO limiter_keys (key, paused_until, pause_reason, updated_at) VALUES (@key, @until, @reason, @now)
       ON CONFLICT (key) DO UPDATE SET
         pause_reason = CASE WHEN @until > paused_until THEN @reason ELSE pause_reason END,
         paused_until = max(paused_until, @until), updated_at = @now`,
    ),
    clearStrikes: db.prepare('UPDATE limiter_keys SET strikes = 0 WHERE key = ? AND strikes > 0'),
    on429: db.prepare(
      `INSERT INTO limiter_keys (key, paused_until, pause_reason, strikes, aimd_rpm, aimd_at, observed_at, updated_at)
       VALUES (@key, @until, @reason, @strikes, @aimd_rpm, @aimd_at, @now, @now)
       ON CONFLICT (key) DO UPDATE SET
         pause_reason = CASE WHEN @until >= paused_until THEN @reason ELSE pause_reason END,
         paused_until = max(paused_until, @until), strikes = @strikes, aimd_rpm = @aimd_rpm, aimd_at = @aimd_at,
         observed_at = coalesce(observed_at, @now), updated_at = @now`,
    ),
    publishRates: db.prepare(
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
    dropRates: db.prepare('DELETE FROM limiter_rates WHERE key = @key AND at < @before'),
  };
}
