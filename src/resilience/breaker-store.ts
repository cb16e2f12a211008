import { FlashcardsError } from '../core/errors.ts';
import {
  announced,
  type BreakerState,
  type Circuit,
  resetsWindow,
  type Step,
  type WindowCounts,
} from './breaker-machine.ts';

/**
 * Where breakers live, behind two small asynchronous interfaces so that every process on the same
 * backend (state.db today, Redis next) reads and obeys the same state. Each method is one atomic
 * operation on the backend (SQLite: one BEGIN IMMEDIATE transaction; Redis: one Lua script) and reads
 * the time itself at that moment (SQLite: its injected Clock; Redis: TIME), so hosts agree on it.
 *
 * The rules stay in breaker-machine.ts. A change of state is optimistic: `read` returns the state with
 * its version and the backend's time, the machine decides in plain code, and `transit` writes the
 * result only if the version has not moved (compare-and-set); `changeBreaker` below retries. Counting
 * calls into the window needs no rule beyond "only while closed", which `record` applies atomically.
 * Per operation of the facade:
 *   acquire (take the probe), settle the probe, release it, trip on the window or streak, isolate,
 *   close: read (or the snapshot `record` returned), decide in the machine, `transit` (optimistic);
 *   count successes and failures, remember the last error: `record` (one atomic operation);
 *   status, `breaker status`, `breaker history`, `breaker rm`: `read`, `list`, `history`, `remove`.
 * A Redis backend therefore needs no Lua copy of the rules: only these data operations, one script each.
 */

export interface LastError {
  kind: string;
  message: string;
  at: number;
}

/** One breaker as read in one atomic operation. */
export interface BreakerSnapshot {
  key: string;
  circuit: Circuit;
  /** Bumped by every `transit`; 0 for a breaker never changed (or not stored at all). */
  version: number;
  /** Calls and failures counted in the window buckets that began after `now - windowMs`. */
  window: WindowCounts;
  lastError: LastError | null;
  /** Its last transition, error or counted call (a counted call is dated by the start of its window bucket). */
  lastActiveAt: number;
  /** The backend's clock when it was read: decisions about this snapshot are made on this time. */
  now: number;
}

/** Calls to add to the window (successes and failures among them), and the failure to remember. */
export interface Tally {
  calls: number;
  failures: number;
  error?: { kind: string; message: string } | undefined;
}

export interface RecordResult {
  /** True when the calls went into the window: the breaker was closed (calls in flight when it opened do not count). */
  counted: boolean;
  /** The breaker right after the tally. */
  snapshot: BreakerSnapshot;
}

export interface TransitChange {
  next: Circuit;
  /** A line for `breaker history` (to = next.state); null when the change is not announced. */
  note: { from: BreakerState; cause: string } | null;
  /** Forget the window's counts (the breaker closes). */
  resetWindow: boolean;
}

/** `at`: the backend's time of the write (history and onTransition use it). */
export type TransitResult = { ok: true; at: number } | { ok: false };

export interface BreakerHistoryEntry {
  key: string;
  at: number;
  from: BreakerState;
  to: BreakerState;
  cause: string;
}

/** History is for people reading `breaker history`, not an audit log: keep the last few hundred. */
export const keptTransitions = 500;

/** What one breaker's facade uses on the request path. */
export interface BreakerStore {
  /** Creates the breaker closed if it does not exist, so `breaker status` lists it before its first call. */
  ensure(key: string): Promise<void>;
  /** The breaker now; one never stored reads as closed at version 0 (and is not created). */
  read(key: string, windowMs: number): Promise<BreakerSnapshot>;
  /**
   * Atomic: remembers `tally.error` as the last error, then adds the calls to the window bucket of the
   * backend's clock if (and only if) the breaker is closed, then reads it back. Creates a missing breaker
   * closed, so one removed by hand while a run goes on comes back.
   */
  record(key: string, tally: Tally, windowMs: number): Promise<RecordResult>;
  /**
   * Compare-and-set: writes `change.next` (and its history line, trimmed to `keptTransitions`) only if the
   * breaker is still at `version` (a missing breaker is at version 0); false when another writer won.
   */
  transit(key: string, version: number, change: TransitChange): Promise<TransitResult>;
}

/** What the `breaker` commands read and do, on any backend. */
export interface BreakerAdmin {
  /** Every stored breaker, in no particular order. */
  list(windowMs: number): Promise<BreakerSnapshot[]>;
  /** The most recent transitions of every breaker, newest first. */
  history(limit: number): Promise<BreakerHistoryEntry[]>;
  /** Forgets a breaker's state and window (its history stays); false when there was none. */
  remove(key: string): Promise<boolean>;
}

export interface Changed<T> {
  /** The snapshot the plan's last decision was made on. */
  before: BreakerSnapshot;
  value: T;
  /** What was written, if anything, and when; `announced` when it went to history. */
  written: { next: Circuit; version: number; at: number; cause: string; announced: boolean } | undefined;
}

/** Another writer won this many times in a row: something is looping, stop rather than spin. */
const maxAttempts = 20;

/**
 * Optimistic read-decide-write: runs `plan` on a snapshot (`first`, else a fresh read), writes its step
 * with a compare-and-set, and on a lost race decides again on a fresh read. The plan must be a pure
 * function of the snapshot (it may run several times).
 */
export async function changeBreaker<T>(
  store: BreakerStore,
  key: string,
  windowMs: number,
  plan: (s: BreakerSnapshot) => { value: T; step?: Step | undefined },
  first?: BreakerSnapshot,
): Promise<Changed<T>> {
  let snapshot = first ?? (await store.read(key, windowMs));
  for (let attempt = 1; ; attempt++) {
    const { value, step } = plan(snapshot);
    if (!step) return { before: snapshot, value, written: undefined };
    const note = announced(snapshot.circuit, step.next)
      ? { from: snapshot.circuit.state, cause: step.cause }
      : null;
    const result = await store.transit(key, snapshot.version, {
      next: step.next,
      note,
      resetWindow: resetsWindow(step.next),
    });
    if (result.ok) {
      return {
        before: snapshot,
        value,
        written: {
          next: step.next,
          version: snapshot.version + 1,
          at: result.at,
          cause: step.cause,
          announced: note !== null,
        },
      };
    }
    if (attempt >= maxAttempts) {
      throw new FlashcardsError(
        'database',
        `circuit breaker ${key} changed ${maxAttempts} times while this process tried to change it`,
        { hint: 'another process keeps changing it (a script isolating and closing it?); run again' },
      );
    }
    snapshot = await store.read(key, windowMs);
  }
}
