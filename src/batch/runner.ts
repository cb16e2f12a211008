import pLimit from 'p-limit';
import type { Clock } from '../core/clock.ts';
import { errorMessage, FlashcardsError, isFlashcardsError, storageError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import { executeJob, isRunFatal, type JobContext, type JobResult } from '../job/execute.ts';
import { isStopping } from '../job/stop.ts';
import { waitForStore } from '../job/store-waits.ts';
import type { Pipeline } from '../pipeline/types.ts';
import { isStoreUnavailable } from '../store/health.ts';
import type { ConcurrencyController } from './concurrency.ts';
import type { FinishedFeed } from './export.ts';
import { isOwnerAlive } from './owner.ts';
import type { BatchCounts, BatchRecord, BatchResults, ClaimedItem, JobOutcome, WorkQueue } from './store.ts';

/** A lease outlives a crash by this much at most when the owner's liveness cannot be checked (other host). */
export const LEASE_MS = 30_000;
const HEARTBEAT_MS = 10_000;
/** How often a run with nothing to claim looks again while other runs hold the rest of the batch. */
const IDLE_POLL_MS = 250;
/** How often the concurrency controller looks at what happened and moves the gate. */
const STEER_MS = 250;
/** How often the latency this run sees is recorded in the shared state. */
const LATENCY_NOTE_MS = 5000;

export interface RunnerOptions {
  batch: BatchRecord;
  /** The leases on the batch's items, shared with other processes. */
  queue: WorkQueue;
  /** Where job outcomes go, and the counts read from them. */
  results: BatchResults;
  pipeline: Pipeline;
  job: JobContext;
  owner: string;
  /** Decides the concurrency of the one gate (p-limit) every item goes through: pinned or steered. */
  concurrency: ConcurrencyController;
  /** Requests per second the limiter allows the run's key now; null when no limit is known. */
  allowedRate: () => Promise<number | null>;
  /** Where the latency this run sees is recorded for others to read (`limiter status`). */
  noteLatency?: ((latency: { p50Ms: number; p75Ms: number }) => Promise<void>) | undefined;
  clock: Clock;
  events: EventSink;
  /** Told of every item this run finishes, for an export that writes the deck during the run. */
  feed?: FinishedFeed | undefined;
}

export type RunOutcome =
  | { status: 'complete'; counts: BatchCounts }
  | { status: 'stopped'; reason: FlashcardsError; counts: BatchCounts }
  /** process --batch-api: `out` submissions are with the provider; run again later (exit 75). */
  | { status: 'waiting'; counts: BatchCounts; out: number; submittedLines: number };

/** What the store keeps of a job's result (JobOutcome), under the claim it ran with. */
export function jobOutcome(
  batchId: string,
  item: ClaimedItem,
  stage: string,
  result: JobResult,
  durationMs: number,
): JobOutcome {
  return {
    batchId,
    idx: item.idx,
    stage,
    token: item.token,
    attempts: result.attempts,
    requests: result.requests,
    promptTokens: result.usage.promptTokens,
    completionTokens: result.usage.completionTokens,
    cached: result.ok && result.cached,
    durationMs,
    requestMs: result.requestMs,
  };
}

/** A failure nothing below handled: a full or failing disk says so; anything else is a bug. */
function unexpected(e: unknown): FlashcardsError {
  if (isFlashcardsError(e)) return e;
  return (
    storageError(e, 'state.db') ??
    new FlashcardsError('internal', `unexpected error: ${errorMessage(e)}`, { cause: e })
  );
}

/**
 * Drives a batch to completion: claims items in input order (leases shared with other processes),
 * runs each item's stages in turn through `executeJob`, and stores every result as it arrives.
 * Every item goes through one p-limit gate, whose concurrency is the only limit on items in
 * flight; the loop keeps a few claimed items queued at the gate so a freed slot starts the next at
 * once. Stopping (signal, deadline, a run-fatal error) takes no new items, lets running ones end,
 * and hands unfinished items back so any later run picks them up.
 */
export async function runBatch(options: RunnerOptions): Promise<RunOutcome> {
  const { batch, queue, pipeline, job, owner, clock, events } = options;
  const store = options.results;
  const control = options.concurrency;
  const gate = pLimit(control.limit);
  const running = new Set<Promise<void>>();
  // One wake-up promise instead of Promise.race over every running task: race leaves a reaction
  // on each task per call, which piles up while a few tasks wait minutes (breaker, backoff).
  let wake: () => void = () => {};
  const slotFreed = (): Promise<void> =>
    new Promise<void>((resolve) => {
      wake = resolve;
    });
  let fatal: FlashcardsError | undefined;
  const stages = pipeline.stages;

  // Back from an outage, renew this run's leases before anything else: leases lapse after
  // LEASE_MS, and another host's claims would take items whose answers this run holds.
  job.storeHealth.onChange((change) => {
    if (change === 'back') queue.heartbeat(batch.id, owner, LEASE_MS).catch(() => {});
  });
  const stopHeartbeat = clock.timer(
    HEARTBEAT_MS,
    () => {
      queue.heartbeat(batch.id, owner, LEASE_MS).catch((e: unknown) => {
        // A shared store that is away misses a beat: leases last three, and the next beat renews them.
        if (isStoreUnavailable(e)) return;
        // The store found lost (exit 5) or any other error of ours says what it is.
        if (isFlashcardsError(e)) {
          fatal ??= e;
          return;
        }
        // A timer must not crash the process: stop the run cleanly instead.
        fatal ??=
          storageError(e, 'state.db') ??
          new FlashcardsError('database', `cannot renew leases in state.db: ${errorMessage(e)}`, {
            cause: e,
          });
      });
    },
    { repeat: true },
  );

  // Items not finished yet: the controller never grows the gate past them.
  let remaining = (await store.counts(batch.id)).pending;
  const steer = async (): Promise<void> => {
    const change = control.decide({
      ratePerSec: await options.allowedRate(),
      waiting: gate.pendingCount > 0,
      remaining,
    });
    if (!change) return;
    gate.concurrency = change.to;
    events.emit({ type: 'concurrency_changed', batchId: batch.id, ...change });
    // A wider gate starts the queued items at once: the loop claims more to keep it fed.
    wake();
  };
  const stopSteering = control.pinned
    ? () => {}
    : clock.timer(
        STEER_MS,
        () => {
          steer().catch(() => {
            // A failed read of the limiter's rate leaves the gate as it is until the next tick.
          });
        },
        { repeat: true },
      );

  const noteLatency = async (): Promise<void> => {
    const p50Ms = control.latencyMs(0.5);
    const p75Ms = control.latencyMs(0.75);
    if (p50Ms !== undefined && p75Ms !== undefined) await options.noteLatency?.({ p50Ms, p75Ms });
  };
  const stopNoting = clock.timer(
    LATENCY_NOTE_MS,
    () => {
      noteLatency().catch(() => {
        // Only `limiter status` reads it: a failed write waits for the next one.
      });
    },
    { repeat: true },
  );

  const stopping = (): boolean => fatal !== undefined || isStopping(job.stop);
  // A shared store that does not answer holds the run up, up to --max-wait (see store-waits.ts).
  const storeWait = { health: job.storeHealth, maxWaitMs: job.maxWaitMs, stop: job.stop };
  const withStore = async <T>(read: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await read();
      } catch (e) {
        if (!isStoreUnavailable(e)) throw e;
        await waitForStore(storeWait);
      }
    }
  };
  // On the way out of a failed item: handing the lease back must not throw over the error being
  // handled (a full disk fails this write too). A lease left behind lapses after LEASE_MS, and
  // releaseLeases frees this run's at the end.
  const releaseItem = async (item: ClaimedItem): Promise<void> => {
    try {
      await queue.releaseItem(batch.id, item.idx, item.token);
    } catch {
      // see above
    }
  };

  const record = async (item: ClaimedItem, stage: string, result: JobResult, started: number) => {
    const outcome = jobOutcome(batch.id, item, stage, result, clock.now() - started);
    // The log names items as people see them in their input: the first row is item 1.
    const timing = {
      item: item.idx + 1,
      stage,
      durationMs: outcome.durationMs,
      requestMs: outcome.requestMs,
      waitMs: Math.max(0, outcome.durationMs - outcome.requestMs),
    };
    if (!result.ok) {
      await store.failJob(outcome, result.error.kind, result.error.message);
      events.emit({
        type: 'job_failed',
        batchId: batch.id,
        ...timing,
        attempts: result.attempts,
        errorKind: result.error.kind,
        message: result.error.message,
      });
      return;
    }
    const last = stage === stages[stages.length - 1]?.name;
    await store.completeJob(outcome, result.value, last);
    // Without the response cache this row is the only copy of a paid answer: commit it now.
    if (!job.cache && !result.cached) await store.flush();
    events.emit({
      type: 'job_succeeded',
      batchId: batch.id,
      ...timing,
      attempts: result.attempts,
      cached: result.cached,
      tokens: result.usage.totalTokens,
      promptTokens: result.usage.promptTokens,
      completionTokens: result.usage.completionTokens,
    });
  };

  const processItem = async (item: ClaimedItem): Promise<void> => {
    // Claimed, then queued at the gate while the run was stopping: hand it back untouched.
    if (stopping()) return releaseItem(item);
    try {
      await runStages(item);
    } finally {
      remaining--;
    }
  };

  const runStages = async (item: ClaimedItem): Promise<void> => {
    const results = item.attempts > 1 ? await withStore(() => store.results(batch.id, item.idx)) : {};
    for (const stage of stages) {
      if (stage.name in results) continue;
      const started = clock.now();
      let result: JobResult;
      try {
        result = await executeJob(job, stage, { item, previous: results }, item.idx);
      } catch (e) {
        await releaseItem(item);
        if (isFlashcardsError(e) && isRunFatal(e)) {
          fatal ??= e;
          return;
        }
        throw e;
      }
      await record(item, stage.name, result, started);
      if (!result.ok) return;
      results[stage.name] = result.value;
    }
    options.feed?.done(item.idx, item, results);
  };

  const launch = (item: ClaimedItem): void => {
    const task = gate(processItem, item).catch(async (e: unknown) => {
      // A bug or a database failure: stop the run rather than spin on the same item.
      await releaseItem(item);
      fatal ??= unexpected(e);
    });
    const tracked = task.finally(() => {
      running.delete(tracked);
      wake();
    });
    running.add(tracked);
  };

  // Items are claimed a few at a time (one commit per claim) and queued at the gate: enough to
  // keep commits off the hot path, too few to starve another process sharing the batch. The queue
  // is topped up once it is half empty, so a claim takes several items, not one per finished item.
  const claimAhead = (): number => Math.max(1, Math.min(32, Math.ceil(gate.concurrency / 2)));
  let claims = 0;
  /** One round of the claim loop; true when the run has nothing more to claim. */
  const claimRound = async (): Promise<boolean> => {
    if (gate.pendingCount > claimAhead() / 2) {
      await slotFreed();
      return false;
    }
    // Items answered from the cache finish in microtasks alone; yielding here now and then lets
    // timers (heartbeat, progress, write-behind) and I/O run during a fully cached run.
    if (++claims % 8 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const claimed = await queue.claim(batch.id, owner, LEASE_MS, claimAhead() - gate.pendingCount);
    if (claimed.length > 0) {
      for (const item of claimed) launch(item);
      return false;
    }
    if (running.size > 0) {
      await slotFreed();
      return false;
    }
    // Nothing claimable here: the rest is either finished or leased by other runs.
    const owners = await queue.leaseOwners(batch.id);
    if (owners.includes(owner)) {
      // Nothing in flight here, yet the store says this run holds leases: a claim it ran after
      // its reply timed out (the store was frozen), or items whose outcomes wait in the outbox.
      // Those are written through first (their fence is this run's token), then the rest goes back.
      await store.flush();
      await queue.releaseLeases(batch.id, owner);
      return false;
    }
    const others = owners.filter((o) => o !== owner);
    if (others.length === 0) {
      if ((await store.counts(batch.id)).pending === 0) return true;
      // Pending items, none in flight and no run holding them: a lease expired or was released
      // between the claim above and this check. Claim again.
      return false;
    }
    let freed = false;
    for (const other of others) {
      if (!isOwnerAlive(other)) {
        await queue.releaseLeases(batch.id, other);
        freed = true;
      }
    }
    if (freed) return false;
    try {
      await clock.sleep(IDLE_POLL_MS, job.stop.stopSignal);
    } catch {
      return true;
    }
    return false;
  };
  try {
    while (!stopping()) {
      try {
        if (await claimRound()) break;
      } catch (e) {
        if (!isStoreUnavailable(e)) throw e;
        // Claims stop while the store is away; items in flight finish (their answers go to the
        // outbox) and claiming resumes when it answers, unless it stays away past --max-wait.
        try {
          await waitForStore(storeWait);
        } catch (w) {
          if (!isFlashcardsError(w) || !isRunFatal(w)) throw w;
          fatal ??= w;
        }
      }
    }
    await Promise.all(running);
  } finally {
    stopHeartbeat();
    stopSteering();
    stopNoting();
    await noteLatency().catch(() => {});
    try {
      // Outcomes kept while the store was away go before the leases that fence them.
      await store.flush();
      // Also commits the last results: a failure here is reported as the reason the run stopped.
      await queue.releaseLeases(batch.id, owner);
    } catch (e) {
      // Leases a store that is away never got back lapse after LEASE_MS.
      if (!isStoreUnavailable(e)) fatal ??= unexpected(e);
    }
  }

  let counts: BatchCounts;
  try {
    counts = fatal ? await store.counts(batch.id) : await withStore(() => store.counts(batch.id));
  } catch (e) {
    // Counting commits the last results first: when even that fails, the reason to stop wins.
    throw fatal ?? unexpected(e);
  }
  if (counts.total === 0) {
    return {
      status: 'stopped',
      counts,
      reason: new FlashcardsError('usage', `batch ${batch.id} was deleted while this run was working on it`),
    };
  }
  // Stopped just as the last item finished: the batch is complete all the same.
  if (counts.pending === 0 && (!fatal || fatal.kind === 'cancelled' || fatal.kind === 'deadline')) {
    return { status: 'complete', counts };
  }
  if (fatal) return { status: 'stopped', reason: fatal, counts };
  if (isStopping(job.stop) || counts.pending > 0) {
    const { deadlineMs } = job.stop;
    const reason =
      deadlineMs !== undefined && clock.now() >= deadlineMs
        ? new FlashcardsError('deadline', 'the run reached its --max-duration')
        : new FlashcardsError('cancelled', 'the run was interrupted');
    return { status: 'stopped', reason, counts };
  }
  return { status: 'complete', counts };
}
