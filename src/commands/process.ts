import { resolve } from 'node:path';
import { runBatch } from '../batch/runner.ts';
import type { JobTotals } from '../batch/store.ts';
import { checkBatchApiProvider } from '../batchapi/provider-check.ts';
import { costOf, loadSettings, type Settings } from '../config/index.ts';
import { withDisposer } from '../core/disposer-stack.ts';
import type { ExitCode } from '../core/errors.ts';
import { publicUrl } from '../core/provider-key.ts';
import type { RunWork } from '../telemetry/textfile.ts';
import { exitCodeOfError, RunTextfile } from '../telemetry/textfile-writer.ts';
import type { CommandContext } from './context.ts';
import { runViaBatchApi } from './process/batch-api.ts';
import { deliver } from './process/deliver.ts';
import { type OpenRun, openRun } from './process/open.ts';
import type { ProcessOptions } from './process/options.ts';
import { planRun, type RunPlan } from './process/plan.ts';
import { summarise } from './process/summarise.ts';
import { openTelemetry } from './process/telemetry.ts';
import { settingsInput } from './state.ts';

export type { ProcessOptions } from './process/options.ts';

/**
 * `flashcards process`: a word list to a deck, in five steps. Plan (settings, checks, output:
 * nothing opened yet), open what the run needs (each part's cleanup on one disposer stack), run
 * the batch, deliver the cards (file, AnkiConnect), summarise (status, summary, exit code).
 * With the OTEL_* variables set, the whole run is one trace (telemetry.ts), flushed at the end.
 */
export async function processCommand(ctx: CommandContext, given: ProcessOptions): Promise<ExitCode> {
  const started = ctx.clock.now();
  let plan: RunPlan;
  try {
    plan = await planRun(ctx, given);
    if (given.batchApi) checkBatchApiProvider(plan.settings);
  } catch (e) {
    // Refused before it opened anything (no key, an output it cannot write): a cron job watched
    // through --metrics-file must not go on reporting its last success.
    await planFailed(ctx, given, started, e);
    throw e;
  }
  // A batch on the batch API is worked on by one run at a time: its submissions are its leases.
  const o = given.batchApi ? { ...given, lock: true } : given;
  const metrics = metricsFile(ctx, plan);
  return withDisposer(async (stack) => {
    const telemetry = await openTelemetry(ctx, plan, stack);
    let run: OpenRun | undefined;
    let before: JobTotals | undefined;
    try {
      run = await openRun(ctx, o, plan, stack, metrics ? [metrics] : [], telemetry);
      if (metrics) before = await run.stores.results.totals(run.batch.id);
      const outcome = await runItems(ctx, o, plan, run);
      const delivery = await deliver(ctx, o, plan, run, outcome);
      const exitCode = await summarise(ctx, o, plan, run, outcome, delivery);
      await metrics?.write(exitCode, await runWork(plan, run, before));
      return exitCode;
    } catch (e) {
      // The root span ends with the error (a no-op when summarise already ended it).
      telemetry?.fail(e);
      // Stopped, interrupted or failed: the file still tells when and how the run ended.
      await metrics?.write(exitCodeOfError(e), run && (await runWork(plan, run, before)));
      throw e;
    }
  });
}

/** Writes --metrics-file for a run refused while planning, when the settings name one. */
async function planFailed(
  ctx: CommandContext,
  o: ProcessOptions,
  started: number,
  e: unknown,
): Promise<void> {
  let settings: Settings;
  try {
    ({ settings } = await loadSettings(settingsInput(ctx, o.flags)));
  } catch {
    return; // The configuration itself is what failed: there is no file to write to.
  }
  if (settings.metricsFile === undefined) return;
  await new RunTextfile({
    path: resolve(ctx.cwd, settings.metricsFile),
    clock: ctx.clock,
    startedAt: started,
    model: settings.model,
    pipeline: settings.pipeline,
    warn: (message) => ctx.io.err(message),
  }).write(exitCodeOfError(e), undefined);
}

/** The run's Prometheus text file (--metrics-file), or undefined when none is asked for. */
function metricsFile(ctx: CommandContext, plan: RunPlan): RunTextfile | undefined {
  const path = plan.settings.metricsFile;
  if (path === undefined) return undefined;
  return new RunTextfile({
    path: resolve(ctx.cwd, path),
    clock: ctx.clock,
    startedAt: plan.started,
    model: plan.settings.model,
    pipeline: plan.pipeline.name,
    warn: (message) => ctx.io.err(message),
  });
}

/**
 * What the run did, for the metrics file: the batch's items now, this run's requests, retries and
 * cache lookups, the tokens served since it opened the batch, and the breaker's state. Undefined
 * when the state cannot be read any more (the file then has the run's end and exit code only).
 */
async function runWork(
  plan: RunPlan,
  run: OpenRun,
  before: JobTotals | undefined,
): Promise<Omit<RunWork, 'rateLimited'> | undefined> {
  try {
    const counts = await run.stores.results.counts(run.batch.id);
    const totals = await run.stores.results.totals(run.batch.id);
    const input = totals.promptTokens - (before?.promptTokens ?? 0);
    const output = totals.completionTokens - (before?.completionTokens ?? 0);
    const { counters } = run.job;
    return {
      items: { done: counts.done, failed: counts.failed, pending: counts.pending },
      requests: counters.requests,
      retries: counters.retries,
      tokens: { input, output },
      costUsd: costOf(plan.settings, input, output),
      cacheHits: counters.cacheHits,
      cacheMisses: counters.cacheMisses,
      breakerState: await run.breakerState().catch(() => undefined),
    };
  } catch {
    return undefined;
  }
}

async function runItems(ctx: CommandContext, o: ProcessOptions, plan: RunPlan, run: OpenRun) {
  const { settings } = plan;
  const before = await run.stores.results.counts(run.batch.id);
  run.events.emit({
    type: 'run_started',
    batchId: run.batch.id,
    input: plan.displayName,
    total: before.total,
    remaining: before.pending,
    resumed: run.resumed,
    model: settings.model,
    baseUrl: publicUrl(settings.baseUrl),
    concurrency: settings.concurrency ?? 'steered',
  });
  if (!o.quiet && !o.json) {
    ctx.io.err(
      `${run.resumed ? 'resuming' : 'created'} batch ${run.batch.id}: ${before.total} items (${before.pending} to do) with ${settings.model}\n`,
    );
  }
  const { batchApi } = o;
  const outcome = batchApi
    ? await runViaBatchApi(ctx, { ...o, batchApi }, plan, run)
    : await runBatch({
        batch: run.batch,
        queue: run.stores.queue,
        results: run.stores.results,
        pipeline: plan.pipeline,
        job: run.job,
        owner: run.owner,
        concurrency: run.steering.concurrency,
        allowedRate: run.steering.allowedRate,
        noteLatency: run.steering.noteLatency,
        clock: ctx.clock,
        events: run.events,
        feed: run.live?.feed,
      });
  // The progress line stops before the summary is printed over it; the breaker's counted
  // successes and the cache's hit counts are written while everything is still open.
  run.endSignals();
  run.progress.stop();
  await run.job.breaker.flush();
  await run.job.cache?.recordRun({
    runId: run.owner,
    startedAt: plan.started,
    hits: run.job.counters.cacheHits,
    misses: run.job.counters.cacheMisses,
    model: settings.model,
  });
  return outcome;
}
