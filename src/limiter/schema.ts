import { type Db, migrate } from '../db/open.ts';

/**
 * limiter_keys: one row per provider key: the layout last used (for `limiter status`), what the
 * provider told us, the shared pause. limiter_shards: one GCRA cell per (key, bucket, shard),
 * a single timestamp each, so an acquire is one tiny row update.
 */
const steps = [
  `CREATE TABLE limiter_keys (
     key TEXT PRIMARY KEY,
     shards INTEGER NOT NULL DEFAULT 1,
     rpm REAL,
     rpm_burst REAL,
     tpm REAL,
     tpm_burst REAL,
     configured_rpm REAL,
     configured_tpm REAL,
     header_rpm REAL,
     header_tpm REAL,
     header_at REAL,
     aimd_rpm REAL,
     aimd_at REAL,
     paused_until REAL NOT NULL DEFAULT 0,
     pause_reason TEXT,
     strikes INTEGER NOT NULL DEFAULT 0,
     observed_at REAL,
     updated_at REAL NOT NULL
   );
   CREATE TABLE limiter_shards (
     key TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('rpm', 'tpm')),
     shard INTEGER NOT NULL,
     tat REAL NOT NULL,
     updated_at REAL NOT NULL,
     PRIMARY KEY (key, kind, shard)
   ) WITHOUT ROWID;`,
  // One row per limiter instance learning a key by AIMD: its recent accepted and admitted rates,
  // so a 429's decrease starts from what the whole key got through, not one process's share.
  `CREATE TABLE limiter_rates (
     key TEXT NOT NULL,
     process TEXT NOT NULL,
     accepted REAL NOT NULL,
     admitted REAL NOT NULL,
     since REAL NOT NULL,
     at REAL NOT NULL,
     PRIMARY KEY (key, process)
   ) WITHOUT ROWID;`,
  // The largest request the layout was planned for: `limiter status` needs it to compute the same
  // tau as the booking (a TPM shard's tau is at least one such request).
  'ALTER TABLE limiter_keys ADD COLUMN max_request_tokens REAL;',
  // How the provider counts a request against its token budget (learn.ts tokenAccounting), and the
  // call latency the runs on this key see (for `limiter status`).
  `ALTER TABLE limiter_keys ADD COLUMN token_accounting TEXT;
   ALTER TABLE limiter_keys ADD COLUMN latency_p50_ms REAL;
   ALTER TABLE limiter_keys ADD COLUMN latency_p75_ms REAL;
   ALTER TABLE limiter_keys ADD COLUMN latency_at REAL;`,
];

export function migrateLimiter(db: Db): void {
  migrate(db, 'limiter', steps);
}

/**
 * The stored state of one provider key (a limiter_keys row as better-sqlite3 returns it): the
 * layout last used, what the provider told us, the shared pause and the AIMD rate. Every backend
 * stores and returns these fields.
 */
export interface KeyRow {
  key: string;
  shards: number;
  rpm: number | null;
  rpm_burst: number | null;
  tpm: number | null;
  tpm_burst: number | null;
  configured_rpm: number | null;
  configured_tpm: number | null;
  header_rpm: number | null;
  header_tpm: number | null;
  header_at: number | null;
  aimd_rpm: number | null;
  aimd_at: number | null;
  paused_until: number;
  pause_reason: string | null;
  strikes: number;
  observed_at: number | null;
  updated_at: number;
  /** Null in rows written before migration 3, until the next layout write. */
  max_request_tokens: number | null;
  /**
   * 'upfront': the provider books prompt + max_tokens when a request arrives and keeps it (OpenAI);
   * 'usage': it counts what the answer used. Null until a response told (treated as upfront).
   */
  token_accounting: TokenAccounting | null;
  /** Call latency the runs on this key saw lately (median, 75th percentile) and when. */
  latency_p50_ms: number | null;
  latency_p75_ms: number | null;
  latency_at: number | null;
}

export type TokenAccounting = 'upfront' | 'usage';

/** A key nothing was stored for yet: one shard, nothing learned, no pause. */
export function defaultRow(key: string): KeyRow {
  return {
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
    max_request_tokens: null,
    token_accounting: null,
    latency_p50_ms: null,
    latency_p75_ms: null,
    latency_at: null,
  };
}

export interface ShardRow {
  key: string;
  kind: 'rpm' | 'tpm';
  shard: number;
  tat: number;
  updated_at: number;
}

/** True when every named table exists (status and reset never create them). */
function hasTables(db: Db, names: readonly string[]): boolean {
  const row = db
    .prepare(
      `SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN (${names.map(() => '?').join(', ')})`,
    )
    .get(...names) as { n: number };
  return row.n === names.length;
}

/** True when `limiter_rates` exists (databases last migrated before it was added do not have it). */
export function hasRatesTable(db: Db): boolean {
  return hasTables(db, ['limiter_rates']);
}

/** True when the limiter tables exist (status and reset never create them). */
export function hasLimiterTables(db: Db): boolean {
  return hasTables(db, ['limiter_keys', 'limiter_shards']);
}
