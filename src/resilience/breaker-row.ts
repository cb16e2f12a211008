import { type BreakerState, type Circuit, closedCircuit } from './breaker-machine.ts';
import type { BreakerSnapshot } from './breaker-store.ts';

/**
 * One breaker as every backend stores it: the columns of state.db's `breakers` table (release 0.1's,
 * plus `version`), which the Redis backend keeps as the fields of one hash. One mapping for both, so
 * `breaker status` prints the same whatever the backend.
 */
export interface BreakerRow {
  key: string;
  state: BreakerState;
  opened_at: number | null;
  /** open: when the break ends and a probe may start. */
  retry_at: number | null;
  consecutive_opens: number;
  probe_owner: string | null;
  probe_until: number | null;
  reason: string | null;
  last_error_kind: string | null;
  last_error_message: string | null;
  last_error_at: number | null;
  updated_at: number;
  version: number;
}

/** The columns a change of state writes (the last error, `updated_at` and `version` are the backend's). */
export type StateColumns = Pick<
  BreakerRow,
  'state' | 'opened_at' | 'retry_at' | 'consecutive_opens' | 'probe_owner' | 'probe_until' | 'reason'
>;

/** A row with its window summed over the buckets that began after `now - windowMs`. */
export interface SnapshotRow extends BreakerRow {
  window_calls: number;
  window_failures: number;
  /** The newest bucket's start, whatever its age (a counted call's date for `lastActiveAt`). */
  last_bucket: number | null;
}

export function toSnapshot(row: SnapshotRow, now: number): BreakerSnapshot {
  return {
    key: row.key,
    circuit: toCircuit(row),
    version: row.version,
    window: { calls: row.window_calls, failures: row.window_failures },
    lastError:
      row.last_error_kind === null || row.last_error_at === null
        ? null
        : { kind: row.last_error_kind, message: row.last_error_message ?? '', at: row.last_error_at },
    lastActiveAt: Math.max(row.updated_at, row.last_error_at ?? 0, row.last_bucket ?? 0),
    now,
  };
}

/** A breaker that is not stored: closed at version 0, as the contract says. */
export function unstoredSnapshot(key: string, now: number): BreakerSnapshot {
  return {
    key,
    circuit: closedCircuit,
    version: 0,
    window: { calls: 0, failures: 0 },
    lastError: null,
    lastActiveAt: now,
    now,
  };
}

/** Every release writes these columns together, so the fallbacks only guard against hand-edited rows. */
export function toCircuit(row: BreakerRow): Circuit {
  const openedAt = row.opened_at ?? row.updated_at;
  switch (row.state) {
    case 'closed':
      return closedCircuit;
    case 'open':
      return {
        state: 'open',
        openedAt,
        retryAt: row.retry_at ?? openedAt,
        opens: row.consecutive_opens,
        reason: row.reason ?? '?',
      };
    case 'half_open':
      return {
        state: 'half_open',
        openedAt,
        opens: row.consecutive_opens,
        probe: { owner: row.probe_owner ?? '?', until: row.probe_until ?? openedAt },
        reason: row.reason ?? '?',
      };
    case 'isolated':
      return { state: 'isolated', openedAt, opens: row.consecutive_opens, reason: row.reason };
  }
}

export function toColumns(c: Circuit): StateColumns {
  const none = {
    opened_at: null,
    retry_at: null,
    consecutive_opens: 0,
    probe_owner: null,
    probe_until: null,
  };
  switch (c.state) {
    case 'closed':
      return { ...none, state: 'closed', reason: null };
    case 'open':
      return {
        ...none,
        state: 'open',
        opened_at: c.openedAt,
        retry_at: c.retryAt,
        consecutive_opens: c.opens,
        reason: c.reason,
      };
    case 'half_open':
      return {
        ...none,
        state: 'half_open',
        opened_at: c.openedAt,
        consecutive_opens: c.opens,
        probe_owner: c.probe.owner,
        probe_until: c.probe.until,
        reason: c.reason,
      };
    case 'isolated':
      return {
        ...none,
        state: 'isolated',
        opened_at: c.openedAt,
        consecutive_opens: c.opens,
        reason: c.reason,
      };
  }
}
