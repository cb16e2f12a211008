import type { BucketKind, BucketPlan } from './layout.ts';

/**
 * GCRA arithmetic over plain values: the one statement of the rules that every limiter backend
 * applies inside its atomic operation (SQLite: one BEGIN IMMEDIATE transaction; Redis: one Lua
 * script mirroring these functions). A shard's whole state is its theoretical arrival time (TAT);
 * null is a shard never used, which is full. Times are the backend's milliseconds.
 */

/** One shard's stored TAT. */
export interface ShardTat {
  kind: BucketKind;
  shard: number;
  tat: number;
}

/** What a booking costs in one bucket: `costMs` of TAT (units x interval), paced by `tauMs`. */
export interface BucketCost {
  kind: BucketKind;
  costMs: number;
  tauMs: number;
}

/** Unused estimated cost of a settled request, given back to one shard in the next booking. */
export interface Refund {
  kind: BucketKind;
  shard: number;
  ms: number;
}

/** Where a booking was charged: the shard, the cost in TAT milliseconds, and the TAT right after. */
export interface Charge {
  kind: BucketKind;
  shard: number;
  costMs: number;
  after: number;
}

export interface BookRequest {
  /** The job's two shard choices (power of two choices); the same shard twice when there is one. */
  shards: readonly [number, number];
  buckets: readonly BucketCost[];
  /** Longer than this to wait, and nothing is charged. */
  maxWaitMs: number;
  refunds: readonly Refund[];
}

export type Booking =
  | { ok: true; now: number; delayMs: number; charges: Charge[] }
  /** `pausedBy` is the pause reason when the shared pause, not the buckets, is what holds the request. */
  | { ok: false; now: number; delayMs: number; pausedBy: string | null };

/** What a booking reads from the store: the backend's time, the key's pause, the TATs involved. */
export interface BookingView {
  now: number;
  pausedUntil: number;
  pauseReason: string | null;
  tats: readonly ShardTat[];
}

/** Every shard 0..shards-1 of a bucket raised to a TAT of at least the backend's now + `aheadMs`. */
export interface Restart {
  kind: BucketKind;
  shards: number;
  aheadMs: number;
}

/** The earliest time a cost conforms on a shard: a request goes while TAT - send time <= tau after it. */
export function conformsAt(tat: number | null, costMs: number, tauMs: number): number {
  return tat === null ? Number.NEGATIVE_INFINITY : tat + costMs - tauMs;
}

/** Power of two choices: of two shards, the one with the earlier TAT (more budget left). */
export function fuller<T extends { tat: number | null }>(a: T, b: T): T {
  return (b.tat ?? Number.NEGATIVE_INFINITY) < (a.tat ?? Number.NEGATIVE_INFINITY) ? b : a;
}

/** A charge sent at `at`: the TAT moves to max(TAT, at) + cost (an unused shard starts at `at`). */
export function charged(tat: number | null, at: number, costMs: number): number {
  return Math.max(tat ?? at, at) + costMs;
}

/**
 * Cancel, with golang.org/x/time/rate semantics: give back only what later bookings have not been
 * promised already (TAT - `after`, the TAT right after this booking), and never below now.
 */
export function cancelled(tat: number, costMs: number, after: number, now: number): number {
  return Math.max(now, tat - Math.max(0, costMs - (tat - after)));
}

/** A refund moves the TAT back, never below now (a full shard). */
export function refunded(tat: number, ms: number, now: number): number {
  return Math.max(now, tat - ms);
}

/** A restart floor: the TAT is raised to it, never lowered. */
export function raised(tat: number | null, floor: number): number {
  return tat !== null && tat >= floor ? tat : floor;
}

/**
 * After a pause only one request per shard may go at once: the provider's bucket is empty, and a
 * full burst right at the pause end would trip it again. The floor is the pause end plus this.
 */
export function restartAheadMs(bucket: BucketPlan, unit: number): number {
  return Math.max(0, bucket.tauMs - unit * bucket.intervalMs);
}

/**
 * The provider's `remaining` count as a floor ahead of now, for every shard; null when it leaves at
 * least a full burst (it can only lower what our buckets think is left, never raise it).
 */
export function remainingAheadMs(bucket: BucketPlan, remaining: number): number | null {
  const perShardMs = (remaining / bucket.shards) * bucket.intervalMs;
  return perShardMs >= bucket.tauMs ? null : bucket.tauMs - perShardMs;
}

const id = (kind: BucketKind, shard: number): string => `${kind}:${shard}`;

/**
 * One booking: pending refunds first, then in every bucket the fuller of the job's two shards;
 * all buckets are charged as of the same send time, so a request held back by one bucket does not
 * bunch up with later ones in the other. Beyond `maxWaitMs` nothing is charged (refunds still
 * apply). Returns the booking and the TATs to write (only shards that changed).
 */
export function decideBooking(view: BookingView, req: BookRequest): { booking: Booking; writes: ShardTat[] } {
  const { now } = view;
  const tats = new Map(view.tats.map((t) => [id(t.kind, t.shard), t.tat]));
  const writes = new Map<string, ShardTat>();
  const tatOf = (kind: BucketKind, shard: number): number | null => tats.get(id(kind, shard)) ?? null;
  const write = (kind: BucketKind, shard: number, tat: number): void => {
    tats.set(id(kind, shard), tat);
    writes.set(id(kind, shard), { kind, shard, tat });
  };
  for (const r of req.refunds) {
    const tat = tatOf(r.kind, r.shard);
    if (tat !== null) write(r.kind, r.shard, refunded(tat, r.ms, now));
  }
  const [a, b] = req.shards;
  let at = Math.max(now, view.pausedUntil);
  const picks = req.buckets.map((bucket) => {
    const pick = fuller({ shard: a, tat: tatOf(bucket.kind, a) }, { shard: b, tat: tatOf(bucket.kind, b) });
    at = Math.max(at, conformsAt(pick.tat, bucket.costMs, bucket.tauMs));
    return { bucket, pick };
  });
  const delayMs = at - now;
  if (delayMs > req.maxWaitMs) {
    const paused = view.pausedUntil >= at && view.pausedUntil > now;
    const pausedBy = paused ? (view.pauseReason ?? 'rate limited') : null;
    return { booking: { ok: false, now, delayMs, pausedBy }, writes: [...writes.values()] };
  }
  const charges = picks.map(({ bucket, pick }): Charge => {
    const after = charged(pick.tat, at, bucket.costMs);
    write(bucket.kind, pick.shard, after);
    return { kind: bucket.kind, shard: pick.shard, costMs: bucket.costMs, after };
  });
  return { booking: { ok: true, now, delayMs, charges }, writes: [...writes.values()] };
}
