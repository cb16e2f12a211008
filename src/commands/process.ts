import { runBatch } from '../batch/runner.ts';
import { withDisposer } from '../core/disposer-stack.ts';
import type { ExitCode } from '../core/errors.ts';
import { publicUrl } from '../core/provider-key.ts';
import type { CommandContext } from './context.ts';
import { deliver } from './process/deliver.ts';
import { type OpenRun, openRun } from './process/open.ts';
import type { ProcessOptions } from './process/options.ts';
import { planRun, type RunPlan } from './process/plan.ts';
import { summarise } from './process/summarise.ts';
import { openTelemetry } from './process/telemetry.ts';

export type { ProcessOptions } from './process/options.ts';

/**
 * `flashcards process`: a word list to a deck, in five steps. Plan (settings, checks, output:
 * nothing opened yet), open what the run needs (each part's cleanup on one disposer stack), run
 * the batch, deliver the cards (file, AnkiConnect), summarise (status, summary, exit code).
 * With the OTEL_* variables set, the whole run is one trace (telemetry.ts), flushed at the end.
 */
export async function processCommand(ctx: CommandContext, o: ProcessOptions): Promise<ExitCode> {
  const plan = await planRun(ctx, o);
  return withDisposer(async (stack) => {
    const telemetry = await openTelemetry(ctx, plan, stack);
    try {
      const run = await openRun(ctx, o, plan, stack, telemetry);
      const outcome = await runItems(ctx, o, plan, run);
      const delivery = await deliver(ctx, o, plan, run, outcome);
      return await summarise(ctx, o, plan, run, outcome, delivery);
    } catch (e) {
      // The root span ends with the error (a no-op when summarise already ended it).
      telemetry?.fail(e);
      throw e;
    }
  });
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
  const outcome = await runBatch({
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
