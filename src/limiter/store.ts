import type { Booking, BookRequest, Charge, Restart } from './gcra.ts';
import type { RateLimitInfo } from './headers.ts';
import type { BucketKind } from './layout.ts';
import type { KeyRow, ShardRow, TokenAccounting } from './schema.ts';
import type { LimiterSettings } from './settings.ts';

/**
 * Where a limiter's shared state lives (SQLite today, Redis next). Every method is one atomic
 * operation on the backend, with the backend's own time (SQLite: its injected clock, read after the
 * write lock is held; Redis: TIME inside the script), so processes on several hosts agree. The
 * rules are pure functions (gcra.ts, after-429.ts) that each backend applies inside the operation
 * (storage.md's way (a): no operation needs a compare-and-set, each reads and writes in one go);
 * test/conformance/limiter-store.ts is the contract every backend passes. Each method names the
 * rule it applies.
 */
export interface LimiterStore {
  /** The key's stored row; undefined when nothing was stored for it yet. */
  readKey(key: string): Promise<KeyRow | undefined>;
  /** Records the layout in use, for `limiter status` (a plain overwrite); returns the row after. */
  writeLayout(key: string, layout: Layout): Promise<KeyRow>;
  /**
   * One booking (decideBooking): pending refunds applied, the fuller of the job's two shards
   * charged in every bucket as of one send time, the shared pause honoured; nothing is charged
   * when the wait would exceed `maxWaitMs`.
   */
  book(key: string, req: BookRequest): Promise<Booking>;
  /** Gives the charges of a booking back (`cancelled`: only what later bookings were not promised). */
  cancel(key: string, charges: readonly Charge[]): Promise<void>;
  /** Charges `costMs` more to one used shard at once (tokens beyond the estimate): `charged` as of now. */
  charge(key: string, kind: BucketKind, shard: number, costMs: number): Promise<void>;
  /** Every shard of each bucket `raised` to a TAT of at least now + `aheadMs` (missing rows are written). */
  restart(key: string, restarts: readonly Restart[]): Promise<void>;
  /**
   * Limits the provider reported (null = not reported: the stored value stays), with the time;
   * marks the key observed.
   */
  learnLimits(key: string, limits: { rpm: number | null; tpm: number | null }): Promise<KeyRow>;
  /** Notes that the provider answered at least once (its limits are no longer a mystery). */
  markObserved(key: string): Promise<KeyRow>;
  /** Pauses the key for `forMs` from now unless it is paused longer already (the later end and its reason win). */
  pause(key: string, forMs: number, reason: string): Promise<KeyRow>;
  /** A success ends a run of 429s: the next one starts again from the shortest pause. */
  clearStrikes(key: string): Promise<KeyRow>;
  /**
   * One 429, atomically: the episode, strikes, pause and AIMD decrease of after429 (with the
   * shared meters when wantsSharedRates: this instance's share is published first, shares older
   * than a minute are dropped), then the shards restarted after the pause (restartsAfter429).
   */
  record429(key: string, observed: Observed429): Promise<KeyRow>;
  /** Publishes this instance's meters (an overwrite of its share), so a 429's decrease sees the whole key. */
  publishRates(key: string, share: RateShare): Promise<void>;
  /** Records how the provider counts tokens (learn.ts tokenAccounting; a plain overwrite). */
  setTokenAccounting(key: string, accounting: TokenAccounting | null): Promise<KeyRow>;
  /** Records the call latency a run sees on this key, with the backend's time (a plain overwrite). */
  recordLatency(key: string, latency: { p50Ms: number; p75Ms: number }): Promise<void>;
}

/** What `limiter status` and `limiter reset` need; commands go through this, never SQL. */
export interface LimiterAdmin {
  /** Every key's stored state, and the backend's time; creates nothing. */
  read(): Promise<{ now: number; keys: StoredKey[] }>;
  /** Forgets every key starting with `prefix` (all keys when undefined); returns the keys removed, sorted. */
  reset(prefix: string | undefined): Promise<string[]>;
}

export interface StoredKey {
  row: KeyRow;
  /** Sorted by kind, then shard. */
  shards: ShardRow[];
}

export interface Layout {
  shards: number;
  rpm: number | null;
  rpmBurst: number | null;
  tpm: number | null;
  tpmBurst: number | null;
  configuredRpm: number | null;
  configuredTpm: number | null;
  maxRequestTokens: number;
}

/** One limiter instance's recent meters, as it publishes them (rates per minute). */
export interface RateShare {
  instance: string;
  accepted: number;
  admitted: number;
  /** How long this instance has been measuring (the backend turns it into a start time). */
  measuringMs: number;
}

export interface Observed429 {
  info: RateLimitInfo;
  settings: LimiterSettings;
  share: RateShare;
}
