/**
 * Where batches live, behind three small asynchronous interfaces, so that every process on the same
 * backend (state.db today, Redis next) shares one catalog, one work queue and one set of results:
 *   - BatchCatalog: the batches themselves (created and loaded by one loader), their settings and
 *     status, and the reads `batches list` and `batches show` need;
 *   - WorkQueue: the leases on items (claim in input order, heartbeat, release) and the runs
 *     registered on a batch (`--lock`);
 *   - BatchResults: job outcomes (fenced by the claim's lease token), stage results, counts, and the
 *     finished items in input order for the deck.
 * Each method is one atomic operation on the backend (SQLite: one statement or one BEGIN IMMEDIATE
 * transaction; Redis: one Lua script) and reads the time itself (SQLite: its injected Clock; Redis:
 * TIME). The rules the operations apply are plain functions in rules.ts, named at each method;
 * test/conformance/batch-*.ts is the contract every backend passes.
 *
 * Job outcomes may be group-committed (SQLite: the write-behind queue, one commit every
 * GROUP_COMMIT_MS): `completeJob` and `failJob` resolve once the outcome is queued. Every other
 * method of the three stores opened together sees the outcomes queued before it (read-your-writes);
 * other processes see them once committed (`flush()` commits at once).
 */

/** `waiting`: its requests are with a provider's batch API (process --batch-api). */
export type BatchStatus = 'loading' | 'running' | 'done' | 'failed' | 'interrupted' | 'aborted' | 'waiting';
export type ItemStatus = 'pending' | 'done' | 'failed';

export interface BatchMeta {
  id: string;
  inputName: string;
  inputDigest: string;
  settingsHash: string;
  pipeline: string;
  stages: readonly string[];
  model: string;
  baseUrl: string;
  outputPath: string | null;
  format: string;
  /** Settings that shape results, kept so `batches export` can rebuild the output without the config. */
  settings: Record<string, unknown>;
}

export interface BatchRecord extends BatchMeta {
  createdAt: number;
  updatedAt: number;
  status: BatchStatus;
  total: number;
  loader: string | null;
}

export interface ItemData {
  term: string;
  line: number;
  position?: string | undefined;
  type?: string | undefined;
  context: Record<string, string>;
}

/** An item as loaded: its position in the input (0-based) and its data. */
export type LoadedItem = ItemData & { idx: number };

export interface ClaimedItem extends ItemData {
  idx: number;
  /** Claims of this item so far, this one included: above 1, earlier runs may have finished stages. */
  attempts: number;
  /**
   * The fencing token of this claim: it grows with every claim of the item, and outcomes and
   * releases carry it, so a worker whose lease was taken over cannot overwrite the new owner's work.
   */
  token: number;
}

export interface JobOutcome {
  batchId: string;
  idx: number;
  stage: string;
  /** The lease token of the claim this job ran under (ClaimedItem.token). */
  token: number;
  attempts: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cached: boolean;
  /** From the job's start to its result, waits (limiter, breaker, backoff) included. */
  durationMs: number;
  /** Of which on the wire: the requests' own time; 0 for an answer from the cache. */
  requestMs: number;
}

export interface BatchCounts {
  total: number;
  done: number;
  failed: number;
  pending: number;
  /** Pending items under a live lease. */
  leased: number;
}

/** A batch as `batches list` shows it: item counts and the request, token and cost figures. */
export interface BatchOverview {
  batch: BatchRecord;
  total: number;
  done: number;
  failed: number;
  requests: number;
  /** promptTokens + completionTokens. */
  tokens: number;
  promptTokens: number;
  completionTokens: number;
}

export interface JobTotals {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  cachedJobs: number;
}

/** One stage's jobs in a batch, for `batches show` (the keys are its --json output). */
export interface StageStats {
  stage: string;
  total: number;
  done: number;
  failed: number;
  pending: number;
  cached: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

/** How long finished, uncached jobs took (null: none yet). */
export interface TimingSummary {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface ItemFailure {
  item: number;
  term: string;
  errorKind: string;
  message: string;
}

export interface FinishedItem {
  idx: number;
  item: ItemData;
  /** Every finished stage's validated result, by stage name (every stage, for a finished item). */
  results: Record<string, unknown>;
}

/** A run registered on a batch, as `runs` reads it (the `--lock` rules use rules.ts RunRegistration). */
export interface RunInfo {
  /** host:pid:nonce (owner.ts). */
  owner: string;
  exclusive: boolean;
  /** When the run joined the batch. */
  startedAt: number;
  /** Last millisecond the registration holds unless a heartbeat renews it. */
  aliveUntil: number;
}

/** Registering a run on a batch: joined, or refused because of these live runs (see rules.ts `runConflicts`). */
export type JoinOutcome = { joined: true } | { joined: false; conflicts: string[] };

/** The batches: created in `loading` state by one loader, then running, then finished. */
export interface BatchCatalog {
  /** Creates the batch in `loading` state under `loader`; false if it already existed (another run made it). */
  create(meta: BatchMeta, loader: string): Promise<boolean>;
  /**
   * Adds a chunk of consecutive items, and a pending job per stage for each, atomically (the loader
   * streams the input in chunks). Rejects items that are not consecutive: a gap would renumber them.
   */
  insertItems(batchId: string, items: readonly LoadedItem[], stages: readonly string[]): Promise<void>;
  /** The load is complete: the batch is running with `total` items and no loader. */
  finishLoading(batchId: string, total: number): Promise<void>;
  /** Deletes a batch still loading under `loader` (a crashed or failed load), and nothing else. */
  deleteLoading(batchId: string, loader: string | null): Promise<void>;
  get(batchId: string): Promise<BatchRecord | undefined>;
  /** Every batch, newest first, with its item counts and request and token totals (one read). */
  overview(): Promise<BatchOverview[]>;
  /** Deletes a batch with its items, jobs, leases and runs. */
  delete(batchId: string): Promise<void>;
  setStatus(batchId: string, status: BatchStatus): Promise<void>;
  setOutput(batchId: string, outputPath: string | null, format: string): Promise<void>;
  /**
   * Merges output choices (deck, note type, tags, fields) into the batch's stored settings (a JSON
   * merge patch: keys set to null are removed), so `batches export` writes what the latest run asked for.
   */
  patchSettings(batchId: string, patch: Record<string, unknown>): Promise<void>;
  /** Per-stage job counts and totals, in the batch's stage order (`batches show`). */
  stageStats(batchId: string): Promise<StageStats[]>;
  /** Percentiles of the finished, uncached jobs' durations (rules.ts `timingSummary`). */
  requestTimes(batchId: string): Promise<TimingSummary>;
}

/** Leases on a batch's items, and the runs working on it. */
export interface WorkQueue {
  /**
   * Leases up to `limit` claimable items (rules.ts `claimable`) to `owner` for `leaseMs`, in input
   * order, each with a new lease token and one more attempt. A store remembers where its last claim
   * ended (a cursor) and looks there first, then from the top for items released or whose leases
   * lapsed: claims walk the input once, not from the top each time.
   */
  claim(batchId: string, owner: string, leaseMs: number, limit: number): Promise<ClaimedItem[]>;
  /** Keeps `owner`'s run registration and its unreleased leases alive for `leaseMs` more, at once. */
  heartbeat(batchId: string, owner: string, leaseMs: number): Promise<void>;
  /** Hands one item back, unless another claim took it since (rules.ts `fenceAdmits`). */
  releaseItem(batchId: string, idx: number, token: number): Promise<void>;
  /** Hands back every pending item `owner` holds in the batch (a run ending, or one found dead). */
  releaseLeases(batchId: string, owner: string): Promise<void>;
  /** Owners holding live leases in the batch (rules.ts `leaseLive`). */
  leaseOwners(batchId: string): Promise<string[]>;
  /**
   * Registers `owner` as a run on the batch for `aliveMs` (renewed by heartbeat), unless it conflicts
   * with a live run (rules.ts `runConflicts`): runs cooperate, an exclusive one (`--lock`) runs alone.
   * Registrations that lapsed are dropped on the way. See `joinRun` below for dead processes.
   */
  joinRun(batchId: string, owner: string, run: { exclusive: boolean; aliveMs: number }): Promise<JoinOutcome>;
  /** Ends `owner`'s run: its leases are handed back and its registration removed, together. */
  leaveRun(batchId: string, owner: string): Promise<void>;
  /**
   * The runs registered on the batch and alive now (aliveUntil at or after now, as runConflicts
   * counts them), oldest first (ties by owner). Only reads: lapsed registrations stay for joinRun
   * to drop, so `flashcards monitor` can watch without writing.
   */
  runs(batchId: string): Promise<RunInfo[]>;
}

/** Job outcomes and what is read from them: progress, the summary, `batches show`, the deck. */
export interface BatchResults {
  /**
   * Stores a stage's validated result (the item is done after its last stage), if the outcome's
   * lease token still holds the item (rules.ts `fenceAdmits`); otherwise it is dropped. Resolves
   * once queued (see above).
   */
  completeJob(outcome: JobOutcome, result: unknown, lastStage: boolean): Promise<void>;
  /** Fails the job and its item, fenced like completeJob; a job already done stays done. */
  failJob(outcome: JobOutcome, errorKind: string, error: string): Promise<void>;
  /** Commits the queued outcomes now (the only copy of a paid answer must not wait). */
  flush(): Promise<void>;
  /** Validated results of the finished stages of one item, by stage name. */
  results(batchId: string, idx: number): Promise<Record<string, unknown>>;
  counts(batchId: string): Promise<BatchCounts>;
  totals(batchId: string): Promise<JobTotals>;
  /** The failed items in input order, at most `limit`. */
  failures(batchId: string, limit: number): Promise<ItemFailure[]>;
  /**
   * Puts failed items and their failed jobs back to pending, errors cleared; returns the items
   * requeued. Attempts are kept: the next claim (attempts > 1) reloads the stages already done.
   */
  requeueFailed(batchId: string): Promise<number>;
  /** Finished items in input order (from item `fromIdx` on) with their stage results, read in pages. */
  finishedItems(batchId: string, fromIdx?: number): AsyncIterable<FinishedItem>;
  /**
   * The items a run of the batch has still to do, in input order, each with the results of the
   * stages it finished (what a dry run estimates): the pending ones, and the failed ones too when
   * `failed` (a run with --retry-failed). Read in pages.
   */
  unfinishedItems(batchId: string, options: { failed: boolean }): AsyncIterable<FinishedItem>;
}

/** The three stores on one backend connection. */
export interface BatchStores {
  catalog: BatchCatalog;
  queue: WorkQueue;
  results: BatchResults;
}

/** Each round drops at least one dead run: more rounds than this means runs keep appearing. */
const maxJoinRounds = 20;

/**
 * Registers `owner` on the batch; returns the owner of a live run it conflicts with, or undefined
 * once registered. Whether a conflicting run's process still exists is a question for this host's
 * OS (`isAlive`), not for the backend: a run found dead leaves (its leases are handed back) and
 * the join is tried again. Safe against races: a dead process never comes back.
 */
export async function joinRun(
  queue: WorkQueue,
  batchId: string,
  owner: string,
  run: { exclusive: boolean; aliveMs: number },
  isAlive: (owner: string) => boolean,
): Promise<string | undefined> {
  for (let round = 1; ; round++) {
    const outcome = await queue.joinRun(batchId, owner, run);
    if (outcome.joined) return undefined;
    const dead = outcome.conflicts.filter((o) => !isAlive(o));
    if (dead.length === 0 || round >= maxJoinRounds) return outcome.conflicts[0];
    for (const o of dead) await queue.leaveRun(batchId, o);
  }
}
