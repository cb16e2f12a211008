import type { ItemStatus, TimingSummary } from './store.ts';

/**
 * The rules of the work queue as plain functions over plain values. A backend applies them inside
 * its atomic operations: SQLite mirrors them in the WHERE clauses of its statements (each names
 * the rule), a Redis backend in its Lua scripts; test/conformance/work-queue.ts holds both to them.
 */

/** An item's lease as stored. `token` grows with every claim; a release clears owner and expiry, not the token. */
export interface ItemLease {
  status: ItemStatus;
  owner: string | null;
  /** Last millisecond the lease holds; 0 when released or never claimed. */
  leaseUntil: number;
  token: number;
}

/** A lease holds up to and including its expiry millisecond. */
export function leaseLive(item: ItemLease, now: number): boolean {
  return item.status === 'pending' && item.owner !== null && item.leaseUntil >= now;
}

/** Pending items whose lease was released or has lapsed can be claimed (by anyone, the last owner too). */
export function claimable(item: ItemLease, now: number): boolean {
  return item.status === 'pending' && item.leaseUntil < now;
}

/**
 * Fencing: an outcome or release carrying `token` applies only while the item is pending and no
 * later claim took it. A lapsed lease nobody took over still admits its owner's late outcome (the
 * answer was paid for); once another worker claimed the item, the stale one's writes are dropped.
 */
export function fenceAdmits(item: ItemLease, token: number): boolean {
  return item.status === 'pending' && item.token === token;
}

/** A run registered on a batch. */
export interface RunRegistration {
  owner: string;
  exclusive: boolean;
  /** Last millisecond the registration holds unless renewed. */
  aliveUntil: number;
}

/**
 * The live runs a new run conflicts with: an exclusive run (`--lock`) conflicts with every other
 * live run, and every run with a live exclusive one. The owner's own registration never conflicts
 * (joining again renews it); a registration past `aliveUntil` no longer counts.
 */
export function runConflicts(
  runs: readonly RunRegistration[],
  join: { owner: string; exclusive: boolean },
  now: number,
): string[] {
  return runs
    .filter((r) => r.owner !== join.owner && r.aliveUntil >= now && (join.exclusive || r.exclusive))
    .map((r) => r.owner);
}

/** Nearest-rank percentiles and the maximum of durations sorted in ascending order. */
export function timingSummary(sorted: readonly number[]): TimingSummary {
  const at = (p: number): number | null =>
    sorted.length === 0
      ? null
      : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? null);
  return { p50: at(50), p90: at(90), p99: at(99), max: sorted.at(-1) ?? null };
}
