import { type BucketKind, bucketPlan } from './layout.ts';
import { aimdRate } from './learn.ts';
import type { KeyRow, ShardRow } from './schema.ts';
import type { StoredKey } from './store.ts';

export interface ShardStatus {
  shard: number;
  /** Units that could be spent right now on this shard. */
  available: number;
  /** Theoretical arrival time; null for a shard never used (full). */
  tat: number | null;
  updatedAt: number | null;
}

export interface BucketStatus {
  kind: BucketKind;
  rate: number;
  burst: number;
  configured: number | null;
  available: number;
  shards: ShardStatus[];
}

export interface KeyStatus {
  key: string;
  shards: number;
  buckets: BucketStatus[];
  /** Limits the provider reported in its headers. */
  provider: { rpm: number | null; tpm: number | null; seenAt: number | null };
  /** Request rate learned from 429s without headers (additive increase already applied). */
  aimd: { rpm: number; since: number } | null;
  pausedUntil: number | null;
  pauseReason: string | null;
  strikes: number;
  observedAt: number | null;
  updatedAt: number;
  /** The call latency runs on this key (one model) saw lately, and when it was recorded. */
  latency: { p50Ms: number; p75Ms: number; at: number } | null;
  /** How the provider counts a request against its token budget; null until a response told. */
  tokenAccounting: 'upfront' | 'usage' | null;
}

/**
 * Every key's buckets and shards as they stand at `nowMs` (the backend's time, from
 * LimiterAdmin.read), computed with the same GCRA parameters the booking uses.
 */
export function keyStatuses(keys: readonly StoredKey[], nowMs: number): KeyStatus[] {
  return keys.map(({ row, shards: rows }) => {
    const buckets: BucketStatus[] = [];
    for (const kind of ['rpm', 'tpm'] as const) {
      const rate = kind === 'rpm' ? row.rpm : row.tpm;
      const burst = kind === 'rpm' ? row.rpm_burst : row.tpm_burst;
      if (rate === null || burst === null) continue;
      buckets.push(bucketStatus(kind, rate, burst, row, rows, nowMs));
    }
    const lastShardUpdate = Math.max(0, ...rows.map((s) => s.updated_at));
    return {
      key: row.key,
      shards: row.shards,
      buckets,
      provider: { rpm: row.header_rpm, tpm: row.header_tpm, seenAt: row.header_at },
      aimd:
        row.aimd_rpm !== null && row.aimd_at !== null
          ? { rpm: aimdRate(row.aimd_rpm, row.aimd_at, nowMs), since: row.aimd_at }
          : null,
      pausedUntil: row.paused_until > nowMs ? row.paused_until : null,
      pauseReason: row.paused_until > nowMs ? row.pause_reason : null,
      strikes: row.strikes,
      observedAt: row.observed_at,
      updatedAt: Math.max(row.updated_at, lastShardUpdate),
      latency:
        row.latency_p50_ms === null || row.latency_p75_ms === null || row.latency_at === null
          ? null
          : { p50Ms: row.latency_p50_ms, p75Ms: row.latency_p75_ms, at: row.latency_at },
      tokenAccounting: row.token_accounting,
    };
  });
}

/**
 * A shard's available units: what conforms now, (now + tau - TAT) / interval, at most tau /
 * interval (a full shard: its burst less the burst slack). A row stored before the largest
 * request was recorded is read as small requests (tau with the slack).
 */
function bucketStatus(
  kind: BucketKind,
  rate: number,
  burst: number,
  row: KeyRow,
  rows: readonly ShardRow[],
  nowMs: number,
): BucketStatus {
  const n = Math.max(1, row.shards);
  const plan = bucketPlan(kind, rate, burst, n, row.max_request_tokens ?? 0);
  const full = plan.tauMs / plan.intervalMs;
  const shards: ShardStatus[] = [];
  for (let shard = 0; shard < n; shard++) {
    const stored = rows.find((s) => s.kind === kind && s.shard === shard);
    const tat = stored?.tat ?? null;
    const available = tat === null ? full : clamp((nowMs + plan.tauMs - tat) / plan.intervalMs, 0, full);
    shards.push({ shard, available, tat, updatedAt: stored?.updated_at ?? null });
  }
  return {
    kind,
    rate,
    burst,
    configured: kind === 'rpm' ? row.configured_rpm : row.configured_tpm,
    available: shards.reduce((sum, s) => sum + s.available, 0),
    shards,
  };
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, n));
}
