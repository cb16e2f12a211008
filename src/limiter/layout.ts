export type BucketKind = 'rpm' | 'tpm';

/**
 * One bucket (requests or tokens per minute) split into `shards` GCRA cells. Each shard holds
 * rate/N and burst/N; in GCRA terms every unit of cost pushes the shard's theoretical arrival
 * time (TAT) forward by `intervalMs`, and a request conforms while TAT - now <= `tauMs`.
 */
export interface BucketPlan {
  kind: BucketKind;
  /** Units per minute for the whole bucket. */
  rate: number;
  /** Units the whole bucket may spend at once. */
  burst: number;
  shards: number;
  shardBurst: number;
  /** Milliseconds of TAT one unit costs on one shard: 60000 * shards / rate. */
  intervalMs: number;
  /** How far ahead of now a shard's TAT may run: shardBurst * intervalMs, less the burst slack. */
  tauMs: number;
}

export interface Plan {
  rpm: BucketPlan | null;
  tpm: BucketPlan | null;
  shards: number;
}

export interface PlanSettings {
  burstSeconds: number;
  shards: number | 'auto';
  maxRequestTokens: number;
}

/**
 * Slack kept against the provider's own bucket (GCRA's cell delay variation tolerance): a stream
 * that conforms to tau - slack still conforms to tau after being delayed by up to `slack` on the
 * way. Taken from the burst (tau), so it costs a burst of requests, never the rate.
 *
 * 200 ms, not just timer jitter: the first requests of a run arrive late (connection set-up; a
 * remote provider adds TLS, 100-300 ms), so the provider's bucket starts later than ours, and the
 * later requests on warm connections arrive early relative to the first. With 50 ms a run told the
 * provider's 600 RPM got 2 of 202 requests answered 429 in its first half second.
 */
export const burstSlackMs = 200;

/**
 * Tau never drops below one request, so a burst of one request has no slack to give: its request
 * spacing grows by this much instead (by what the burst above one request leaves uncovered, when
 * it is a fraction of a request). Only 50 ms: spacing is paid on every request, so it is rate lost
 * for the whole run; at 60 RPM the spacing is 1000 ms, and 50 ms more costs 5% of the rate where
 * 200 ms would cost 17%. A burst too small to give up all of `burstSlackMs` (one to three requests
 * at 600 RPM) keeps one request, and at least this much slack.
 */
export const spacingSlackMs = 50;

/** Auto mode keeps at least this many requests of burst in every RPM shard. */
export const minShardBurstRequests = 10;

/**
 * Burst: `burstSeconds` worth of the rate, at least one request (for tokens: one request of
 * `maxRequestTokens`), at most a whole minute's budget.
 */
export function burstFor(kind: BucketKind, rate: number, settings: PlanSettings): number {
  const oneRequest = kind === 'rpm' ? 1 : settings.maxRequestTokens;
  return Math.min(rate, Math.max(oneRequest, (rate * settings.burstSeconds) / 60));
}

function floorPowerOfTwo(n: number): number {
  return n < 1 ? 1 : 2 ** Math.floor(Math.log2(n));
}

/**
 * Shard count. 'auto': the largest power of two that leaves every RPM shard at least 10 requests
 * and every TPM shard at least one largest request, so low rates get one shard. An explicit count
 * is lowered to what keeps one request (of `maxRequestTokens`) per shard.
 */
export function shardCount(
  bursts: { rpm: number | null; tpm: number | null },
  settings: PlanSettings,
): number {
  const auto = settings.shards === 'auto';
  let n = settings.shards === 'auto' ? Number.POSITIVE_INFINITY : settings.shards;
  if (bursts.rpm !== null) {
    n = Math.min(n, auto ? floorPowerOfTwo(bursts.rpm / minShardBurstRequests) : Math.floor(bursts.rpm));
  }
  if (bursts.tpm !== null) {
    const fit = bursts.tpm / settings.maxRequestTokens;
    n = Math.min(n, auto ? floorPowerOfTwo(fit) : Math.floor(fit));
  }
  return Number.isFinite(n) ? Math.max(1, n) : 1;
}

/**
 * One bucket's GCRA parameters. The booking and `limiter status` both build them here, so status
 * shows what the booking admits (tau less the burst slack). `maxRequestTokens` bounds a TPM
 * shard's tau from below: one largest request must always fit.
 */
export function bucketPlan(
  kind: BucketKind,
  rate: number,
  burst: number,
  shards: number,
  maxRequestTokens: number,
): BucketPlan {
  const shardBurst = burst / shards;
  const oneRequest = kind === 'rpm' ? 1 : Math.min(maxRequestTokens, shardBurst);
  const nominal = (60_000 * shards) / rate;
  // Requests: tau never drops below one request, so a burst of one request gives up no slack and
  // its spacing grows instead, by what of `spacingSlackMs` the burst above one request leaves
  // uncovered. A burst less than `burstSlackMs` above one request gives up only what it has.
  const intervalMs =
    kind === 'rpm' ? nominal + Math.max(0, spacingSlackMs - (shardBurst - 1) * nominal) : nominal;
  const tauMs = Math.max(oneRequest * intervalMs, shardBurst * nominal - burstSlackMs);
  return { kind, rate, burst, shards, shardBurst, intervalMs, tauMs };
}

/** The buckets for the effective rates; null rates (unknown, unlimited) get no bucket. */
export function planBuckets(rates: { rpm: number | null; tpm: number | null }, settings: PlanSettings): Plan {
  const bursts = {
    rpm: rates.rpm === null ? null : burstFor('rpm', rates.rpm, settings),
    tpm: rates.tpm === null ? null : burstFor('tpm', rates.tpm, settings),
  };
  const shards = shardCount(bursts, settings);
  const plan = (kind: BucketKind, rate: number | null, burst: number | null): BucketPlan | null =>
    rate === null || burst === null ? null : bucketPlan(kind, rate, burst, shards, settings.maxRequestTokens);
  return { rpm: plan('rpm', rates.rpm, bursts.rpm), tpm: plan('tpm', rates.tpm, bursts.tpm), shards };
}

export function samePlan(a: Plan, b: Plan): boolean {
  const same = (x: BucketPlan | null, y: BucketPlan | null): boolean =>
    x === y ||
    (x !== null && y !== null && x.rate === y.rate && x.burst === y.burst && x.shards === y.shards);
  return a.shards === b.shards && same(a.rpm, b.rpm) && same(a.tpm, b.tpm);
}

/** FNV-1a, 32 bits: a fast, stable string hash (the same job always lands on the same shards). */
function fnv1a(text: string, seed: number): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche so short ids that differ in the last character spread over all shards.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

/** "Power of two choices": two distinct shards for a job (the same shard twice when there is one). */
export function pickShards(jobId: string, shards: number): [number, number] {
  if (shards <= 1) return [0, 0];
  const a = fnv1a(jobId, 0x811c9dc5) % shards;
  const b = (a + 1 + (fnv1a(jobId, 0x9747b28c) % (shards - 1))) % shards;
  return [a, b];
}
