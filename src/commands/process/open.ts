import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ComposedRun, composeRun } from '../../batch/compose.ts';
import { type LiveExport, startLiveExport } from '../../batch/export.ts';
import { identifyBatch } from '../../batch/identify.ts';
import { isOwnerAlive, newOwnerId, ownerPid } from '../../batch/owner.ts';
import { prepareBatch, spoolStdin } from '../../batch/prepare.ts';
import { DEADLINE_GRACE_MS, runSignals } from '../../batch/run-signals.ts';
import { LEASE_MS } from '../../batch/runner.ts';
import { type BatchRecord, type BatchStores, joinRun } from '../../batch/store.ts';
import { fetchTransport, type Transport } from '../../client/transport.ts';
import { costOf, PRESETS } from '../../config/index.ts';
import type { DisposerStack } from '../../core/disposer-stack.ts';
import { errorMessage, FlashcardsError } from '../../core/errors.ts';
import { type EventSink, fanOut } from '../../core/events.ts';
import { dataPaths } from '../../core/home.ts';
import { publicUrl } from '../../core/provider-key.ts';
import { systemRandom } from '../../core/random.ts';
import type { JobContext } from '../../job/execute.ts';
import type { BreakerState } from '../../resilience/breaker-machine.ts';
import type { SharedState } from '../../store/state.ts';
import type { RunTelemetry } from '../../telemetry/otel.ts';
import { chatTarget } from '../../telemetry/target.ts';
import { openJsonLog } from '../../ui/json-log.ts';
import { pruneLogs } from '../../ui/log-retention.ts';
import { createProgress, type LiveFigures, type Progress, progressMode } from '../../ui/progress.ts';
import type { CommandContext } from '../context.ts';
import { openCommandState } from '../state.ts';
import type { ProcessOptions } from './options.ts';
import type { RunPlan } from './plan.ts';

/** Everything a run holds open; each part is registered on the command's disposer stack. */
export interface OpenRun {
  owner: string;
  /** The batch catalog, work queue and results, in the shared state (state.db or Redis). */
  stores: BatchStores;
  batch: BatchRecord;
  resumed: boolean;
  job: JobContext;
  /** The run's concurrency controller and the limiter's allowed rate it steers by. */
  steering: Pick<ComposedRun, 'concurrency' | 'allowedRate' | 'noteLatency'>;
  events: EventSink;
  progress: Progress;
  log: string;
  /** The deck file being written during the run (absent for stdout, .apkg and AnkiConnect only). */
  live: LiveExport | undefined;
  /** Items done before this run started. */
  skipped: number;
  /** Ends the deadline's timers once the run is over (delivery is not cut short by them). */
  endSignals: () => void;
  /** The shared state the run opened (the batch API's submissions live there too). */
  state: SharedState;
  /** How requests reach the provider when not the default node:http(s) (the mock, tests). */
  transport: Transport | undefined;
  /** The provider key's circuit breaker as the shared state holds it now (for the metrics file). */
  breakerState: () => Promise<BreakerState>;
  /** The run's trace and metrics, when it exports telemetry. */
  telemetry: RunTelemetry | undefined;
}

/** How often the whole batch's counts are read for the progress line (other runs may share it). */
const BATCH_COUNTS_EVERY_MS = 2000;

/** The progress line's live figures: requests in flight, the limiter's pace, the whole batch. */
function liveFigures(
  composed: ComposedRun,
  stores: BatchStores,
  batchId: string,
  clock: CommandContext['clock'],
): () => Promise<LiveFigures> {
  let counts: { at: number; batch: LiveFigures['batch'] } | undefined;
  return async () => {
    const now = clock.now();
    if (!counts || now - counts.at >= BATCH_COUNTS_EVERY_MS) {
      const c = await stores.results.counts(batchId);
      counts = { at: now, batch: { total: c.total, done: c.done, failed: c.failed } };
    }
    const limits = await composed.limiter.snapshot();
    const known = limits.rpm !== null || limits.tpm !== null;
    return {
      inFlight: composed.concurrency.inFlight,
      limit: composed.concurrency.limit,
      pace: {
        rpm: limits.rpm,
        tpm: limits.tpm,
        source: !known ? 'none' : limits.learned ? 'learned' : 'told',
      },
      batch: counts.batch,
    };
  };
}

/**
 * The input as a file: a path, or stdin copied to a temp file that goes away with the run. None
 * for a named batch (`--batch <id>`), which is resumed from its stored items: its input is not read.
 */
async function inputFile(
  ctx: CommandContext,
  o: ProcessOptions,
  stack: DisposerStack,
): Promise<string | undefined> {
  if (o.batch !== undefined || o.input === undefined) return undefined;
  if (o.input !== '-') return resolve(ctx.cwd, o.input);
  const spooled = await spoolStdin(ctx.home, o.stdin ?? process.stdin);
  stack.defer(() => rmSync(spooled, { force: true }));
  return spooled;
}

/**
 * Opens what a run needs, in order, each with its cleanup on `stack`: the shared state, the
 * batch (found, or loaded from the input), this run's registration on it, the log, the progress
 * display, the stop signals, the job's policies and the live deck file.
 */
export async function openRun(
  ctx: CommandContext,
  o: ProcessOptions,
  plan: RunPlan,
  stack: DisposerStack,
  /** More sinks of the run's events (the metrics file's), beside the log and the progress line. */
  sinks: readonly EventSink[] = [],
  telemetry?: RunTelemetry | undefined,
): Promise<OpenRun> {
  const { settings, pipeline } = plan;
  const paths = dataPaths(ctx.home);
  const owner = newOwnerId();
  const state = await openCommandState(ctx, true, settings);
  let awayStarted: number | undefined;
  stack.defer(() => state.close());
  const stores = state.batches;
  const { catalog, queue, results } = stores;
  const inputPath = await inputFile(ctx, o, stack);
  const identity = await identifyBatch(catalog, {
    settings,
    pipeline,
    inputPath,
    batch: o.batch,
    newBatch: o.newBatch,
  });
  const { batch, resumed } = await prepareBatch({
    catalog,
    meta: {
      id: identity.id,
      inputName: plan.displayName,
      inputDigest: identity.inputDigest,
      settingsHash: identity.settingsHash,
      pipeline: pipeline.name,
      stages: pipeline.stages.map((s) => s.name),
      model: settings.model,
      baseUrl: publicUrl(settings.baseUrl),
      outputPath: plan.output,
      format: plan.format,
      settings: { ...identity.shaping, pipelineRef: plan.pipelineRef, ...plan.choice },
    },
    inputPath,
    displayName: plan.displayName,
    owner,
    clock: ctx.clock,
    signal: o.signal,
  });

  const conflict = await joinRun(
    queue,
    batch.id,
    owner,
    { exclusive: o.lock, aliveMs: LEASE_MS },
    isOwnerAlive,
  );
  if (conflict) {
    throw new FlashcardsError(
      'locked',
      `another run (pid ${ownerPid(conflict)}) is working on batch ${batch.id}`,
      {
        hint: o.lock
          ? 'wait for it to finish, or run without --lock to cooperate with it'
          : 'that run holds --lock; wait for it to finish',
      },
    );
  }
  // Hand back this run's leases and registration, at the end or on a second Ctrl-C. The second
  // Ctrl-C exits right after calling this: SQLite does the work before the promise is returned.
  const leave = (): Promise<void> => queue.leaveRun(batch.id, owner);
  stack.defer(leave);
  o.onHardExit?.(() => {
    leave().catch(() => {});
  });
  if (o.retryFailed) await results.requeueFailed(batch.id);
  await catalog.setOutput(batch.id, plan.output === '-' ? null : plan.output, plan.format);
  // JSON merge patch: null removes a key, so a choice dropped since the last run is forgotten.
  await catalog.patchSettings(batch.id, {
    deck: plan.choice.deck ?? null,
    noteType: plan.choice.noteType ?? null,
    tags: plan.choice.tags,
    fields: plan.choice.fields ?? null,
  });

  // Old run logs go before this run writes its own (a cron run every 30 minutes writes 48 a day).
  pruneLogs(paths.logs, { ...settings.logs, nowMs: ctx.clock.now() });
  const runId = owner.split(':').slice(1).join('-');
  const log = stack.use(
    openJsonLog(
      paths.logs,
      () => ctx.clock.now(),
      runId,
      (e) =>
        ctx.io.err(`warning: cannot write the run's log (${errorMessage(e)}); the run goes on without it\n`),
      telemetry ? () => telemetry.correlate() : undefined,
    ),
  );
  const traced = telemetry?.describe({
    batchId: batch.id,
    runId,
    pipeline: pipeline.name,
    lastStage: pipeline.stages[pipeline.stages.length - 1]?.name ?? '',
    target: chatTarget({
      provider: settings.provider,
      baseUrl: publicUrl(settings.baseUrl),
      model: settings.model,
      presetBaseUrl: PRESETS[settings.provider].baseUrl,
    }),
  });
  // The live figures come from the policies, composed below (the progress line starts first).
  let figures: (() => Promise<LiveFigures>) | undefined;
  const progress = await createProgress({
    io: ctx.io,
    mode: progressMode(ctx.io, o),
    clock: ctx.clock,
    intervalMs: settings.progressIntervalMs,
    lastStage: pipeline.stages[pipeline.stages.length - 1]?.name ?? '',
    maxWaitMs: settings.breaker.maxWaitMs,
    live: async () => figures?.(),
    cost: (prompt, completion) => costOf(settings, prompt, completion),
  });
  stack.defer(() => progress.stop());
  const events = fanOut(log, progress, ...sinks, ...(traced?.events ? [traced.events] : []));
  state.health.onChange((change) => {
    const since = state.health.awaySince;
    events.emit({
      type: 'store_changed',
      batchId: batch.id,
      change,
      where: state.health.where,
      ...(change === 'back' && awayStarted !== undefined ? { awayMs: ctx.clock.now() - awayStarted } : {}),
    });
    awayStarted = change === 'away' ? (since ?? ctx.clock.now()) : undefined;
  });

  const deadlineMs = settings.maxDurationMs === undefined ? undefined : plan.started + settings.maxDurationMs;
  const signals = runSignals({
    signal: o.signal,
    stopSignal: o.stopSignal,
    deadlineInMs: deadlineMs === undefined ? undefined : deadlineMs - ctx.clock.now(),
    graceMs: Math.min(DEADLINE_GRACE_MS, settings.timeoutMs),
    clock: ctx.clock,
  });
  stack.defer(() => signals.dispose());
  // The offline mock (and its schema sampler) loads only when asked for.
  const transport =
    settings.provider === 'mock'
      ? fetchTransport((await import('../../client/mock-fetch.ts')).createMockFetch())
      : o.fetch
        ? fetchTransport(o.fetch)
        : undefined;
  const composed = composeRun({
    state,
    settings,
    batchId: batch.id,
    owner,
    refresh: o.refresh,
    transport,
    events,
    signals,
    deadlineMs,
    clock: ctx.clock,
    random: systemRandom,
    telemetry: traced?.job,
  });
  const { job } = composed;
  figures = liveFigures(composed, stores, batch.id, ctx.clock);
  stack.defer(() => job.cache?.close());

  // A deck file is written while the run goes on, so the end of a run waits for its last few
  // items, not for the whole deck. Not stdout (a stopped run must print no partial deck), and not
  // an .apkg (its scratch collection would outlive a run killed with -9).
  const live =
    plan.output !== null && plan.output !== '-' && plan.format !== 'apkg'
      ? startLiveExport({
          results,
          batchId: batch.id,
          pipeline,
          output: plan.output,
          format: plan.format,
          meta: plan.meta,
        })
      : undefined;
  if (live) stack.defer(() => live.feed.abort());
  const before = await results.counts(batch.id);
  return {
    owner,
    stores,
    batch,
    resumed,
    job,
    steering: composed,
    events,
    progress,
    log: log.path,
    live,
    skipped: before.total - before.pending,
    endSignals: () => signals.dispose(),
    state,
    transport,
    breakerState: async () =>
      (await state.breaker.store.read(job.providerKey, settings.breaker.samplingWindowMs)).circuit.state,
    telemetry,
  };
}
