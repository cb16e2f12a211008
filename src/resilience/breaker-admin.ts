import { type BreakerState, close, defaultBreakerSettings, isolate, type Step } from './breaker-machine.ts';
import {
  type BreakerAdmin,
  type BreakerHistoryEntry,
  type BreakerSnapshot,
  type BreakerStore,
  changeBreaker,
} from './breaker-store.ts';

export interface BreakerStatus {
  key: string;
  state: BreakerState;
  /** Counts in the current sampling window (reset when the breaker closes). */
  calls: number;
  failures: number;
  failureRatio: number;
  openedAt: number | null;
  /** open: when the next probe may start; half_open: when the probe lease expires. */
  retryAtMs: number | null;
  consecutiveOpens: number;
  reason: string | null;
  lastError: { kind: string; message: string; at: number } | null;
  probe: { owner: string; until: number } | null;
  lastActiveAt: number;
}

/** A snapshot as people and `breaker status --json` see it. */
export function toStatus(s: BreakerSnapshot): BreakerStatus {
  const c = s.circuit;
  // While open the window still holds the calls that tripped it (it resets on close), which is what people want to see.
  const { calls, failures } = s.window;
  return {
    key: s.key,
    state: c.state,
    calls,
    failures,
    failureRatio: calls === 0 ? 0 : failures / calls,
    openedAt: c.state === 'closed' ? null : c.openedAt,
    retryAtMs: c.state === 'open' ? c.retryAt : c.state === 'half_open' ? c.probe.until : null,
    consecutiveOpens: c.state === 'closed' ? 0 : c.opens,
    reason: c.state === 'closed' ? null : c.reason,
    lastError: s.lastError,
    probe: c.state === 'half_open' ? { ...c.probe } : null,
    lastActiveAt: s.lastActiveAt,
  };
}

/** Every breaker on the backend, most recently active first (for `breaker status`). */
export async function listBreakers(
  admin: BreakerAdmin,
  samplingWindowMs = defaultBreakerSettings.samplingWindowMs,
): Promise<BreakerStatus[]> {
  return (await admin.list(samplingWindowMs))
    .map(toStatus)
    .sort((a, b) => b.lastActiveAt - a.lastActiveAt || a.key.localeCompare(b.key));
}

/** The most recent transitions of every breaker, newest first. */
export function breakerHistory(admin: BreakerAdmin, limit: number): Promise<BreakerHistoryEntry[]> {
  return admin.history(limit);
}

export interface ManualChange {
  /** The state it was in when the change was decided. */
  before: BreakerState;
  /** The transition written to history, if the state changed. */
  transition: { from: BreakerState; to: BreakerState; cause: string; at: number } | undefined;
}

/** Isolates `key` by hand (creating it if no run has used it yet): open until closed by hand. */
export function isolateBreaker(store: BreakerStore, key: string, reason: string): Promise<ManualChange> {
  return manual(store, key, (s) => isolate(s.circuit, s.now, reason));
}

/** Closes `key` by hand from any state; its window and break growth start over. */
export function closeBreaker(store: BreakerStore, key: string): Promise<ManualChange> {
  return manual(store, key, () => close());
}

/** Forgets a breaker (for `breaker rm`): false when there was none. A run still using it starts it again, closed. */
export function removeBreaker(admin: BreakerAdmin, key: string): Promise<boolean> {
  return admin.remove(key);
}

async function manual(
  store: BreakerStore,
  key: string,
  step: (s: BreakerSnapshot) => Step,
): Promise<ManualChange> {
  const r = await changeBreaker(store, key, defaultBreakerSettings.samplingWindowMs, (s) => ({
    value: undefined,
    step: step(s),
  }));
  const w = r.written;
  return {
    before: r.before.circuit.state,
    transition:
      w?.announced === true
        ? { from: r.before.circuit.state, to: w.next.state, cause: w.cause, at: w.at }
        : undefined,
  };
}
