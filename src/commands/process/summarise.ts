import { emptyItemsWarning } from '../../batch/export.ts';
import { formatFailureGroup, readFailures } from '../../batch/failure-groups.ts';
import type { RunOutcome } from '../../batch/runner.ts';
import { costOf } from '../../config/index.ts';
import { ExitCode, type ExitCode as ExitCodeType, FlashcardsError } from '../../core/errors.ts';
import { noteTypeHint } from '../../output/note-type-hint.ts';
import { printSummary, type RunSummary } from '../../ui/summary.ts';
import type { CommandContext } from '../context.ts';
import type { Delivery } from './deliver.ts';
import type { OpenRun } from './open.ts';
import type { ProcessOptions } from './options.ts';
import type { RunPlan } from './plan.ts';

/** How many causes of failure the summary names, the most frequent first. */
const GROUPS_SHOWN = 3;

/** True when this run finished no item (done or failed). */
function finishedNothing(s: RunSummary): boolean {
  return s.items.total - s.items.pending - s.items.skipped <= 0;
}

/** The exit code of a run: what stopped it, else whether everything it was asked for succeeded. */
function exitCodeOf(outcome: RunOutcome, delivery: Delivery): ExitCodeType {
  if (outcome.status === 'stopped') return outcome.reason.exitCode;
  if (outcome.status === 'waiting') return ExitCode.later;
  const { tally, pushed } = delivery;
  // Items that all came back without a single card mean the pipeline made nothing: not a success.
  const madeNothing = tally !== undefined && tally.items > 0 && tally.withoutCards === tally.items;
  return outcome.counts.failed > 0 || (pushed?.failed ?? 0) > 0 || madeNothing
    ? ExitCode.itemsFailed
    : ExitCode.ok;
}

/**
 * Records how the run ended (the batch's status, the log's last event), prints the summary (a
 * table on stderr, or the --json object on stdout) and returns the exit code; a stopped run ends
 * with its reason as the error, and a hint on how to resume.
 */
export async function summarise(
  ctx: CommandContext,
  o: ProcessOptions,
  plan: RunPlan,
  run: OpenRun,
  outcome: RunOutcome,
  delivery: Delivery,
): Promise<ExitCodeType> {
  const { stores, batch, events } = run;
  const emptyWarning = delivery.tally ? emptyItemsWarning(delivery.tally, plan.pipeline) : undefined;
  if (emptyWarning && !o.json) ctx.io.err(`warning: ${emptyWarning}\n`);
  // A text deck names its note type, but Anki cannot create one from a text import.
  const noteType = delivery.written ? noteTypeHint(plan.format, plan.meta) : undefined;
  if (noteType && !o.json && !o.quiet) ctx.io.err(`warning: ${noteType}\n`);
  const exitCode = exitCodeOf(outcome, delivery);
  const status =
    outcome.status === 'complete'
      ? exitCode === ExitCode.ok
        ? 'done'
        : 'failed'
      : outcome.status === 'waiting'
        ? 'waiting'
        : outcome.reason.exitCode === ExitCode.interrupted
          ? 'interrupted'
          : 'aborted';
  await stores.catalog.setStatus(batch.id, status);
  const totals = await stores.results.totals(batch.id);
  const durationMs = ctx.clock.now() - plan.started;
  events.emit({ type: 'run_finished', batchId: batch.id, status, exitCode, durationMs });

  const counts = outcome.counts;
  run.telemetry?.finish({
    status,
    exitCode,
    counts: { total: counts.total, done: counts.done, failed: counts.failed, pending: counts.pending },
  });
  const { written, pushed, tally } = delivery;
  const failed = await readFailures(stores.results, batch.id);
  const summary: RunSummary = {
    batchId: batch.id,
    status,
    exitCode,
    input: batch.inputName,
    output: written ? written.path : null,
    format: plan.format,
    items: {
      total: counts.total,
      succeeded: counts.done,
      failed: counts.failed,
      pending: counts.pending,
      skipped: run.skipped,
    },
    cards: written?.cards ?? pushed?.cards ?? 0,
    itemsWithoutCards: tally?.withoutCards ?? 0,
    ...(pushed ? { ankiConnect: pushed } : {}),
    requests: run.job.counters.requests,
    concurrency: {
      final: run.steering.concurrency.limit,
      peak: run.steering.concurrency.peak,
      pinned: run.steering.concurrency.pinned,
    },
    cacheHits: run.job.counters.cacheHits,
    retries: run.job.counters.retries,
    tokens: {
      prompt: totals.promptTokens,
      completion: totals.completionTokens,
      total: totals.promptTokens + totals.completionTokens,
    },
    costUsd: batchApiCost(o, plan, totals),
    ...(o.batchApi
      ? {
          batchApi: {
            out: outcome.status === 'waiting' ? outcome.out : 0,
            submittedLines: outcome.status === 'waiting' ? outcome.submittedLines : 0,
            discount: plan.settings.batchApi.discount,
            syncCostUsd: costOf(plan.settings, totals.promptTokens, totals.completionTokens),
          },
        }
      : {}),
    durationMs,
    log: run.log,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    // Items as people count their rows: the first is 1.
    failures: failed.failures.slice(0, 50),
  };
  const groups = failed.groups.slice(0, GROUPS_SHOWN);
  // A run that stopped before it finished a single item (a provider that is not there, a
  // rejected key) has nothing to sum up: the error says it all, in a few lines.
  const stoppedEmpty = outcome.status === 'stopped' && finishedNothing(summary);
  if (o.json) ctx.io.out(`${JSON.stringify({ ...summary, failureGroups: groups })}\n`);
  else if (!o.quiet && !stoppedEmpty) {
    await printSummary(ctx.io, summary);
    // One failed item is its own cause; with more, the causes say what to fix first.
    if (counts.failed > 1 && groups.length > 0) {
      ctx.io.err('most frequent causes:\n');
      for (const g of groups) ctx.io.err(`  ${formatFailureGroup(g)}\n`);
      if (failed.groups.length > GROUPS_SHOWN)
        ctx.io.err(
          `  ... and ${failed.groups.length - GROUPS_SHOWN} more (flashcards batches show ${batch.id})\n`,
        );
    }
  }

  if (outcome.status === 'waiting' && !o.json && !o.quiet) {
    ctx.io.err(
      `${outcome.out} submission(s) with the provider's batch API: run the same command again later (exit 75 until the batch is complete)\n`,
    );
  }
  if (outcome.status === 'stopped') {
    const resume = o.newBatch
      ? `resume it with --batch ${batch.id} instead of --new (--new would start yet another batch)`
      : `run the same command again to resume batch ${batch.id}`;
    const hint =
      outcome.reason.kind === 'deadline' || exitCode === ExitCode.interrupted
        ? resume
        : (outcome.reason.hint ?? resume);
    throw new FlashcardsError(
      outcome.reason.kind,
      `${outcome.reason.message}; ${counts.pending} item(s) left`,
      {
        exitCode: outcome.reason.exitCode,
        hint,
      },
    );
  }
  return exitCode;
}

/** The batch's cost: at the batch API's discount with --batch-api (its answers are billed so). */
function batchApiCost(
  o: ProcessOptions,
  plan: RunPlan,
  totals: { promptTokens: number; completionTokens: number },
): number | null {
  const cost = costOf(plan.settings, totals.promptTokens, totals.completionTokens);
  if (cost === null || !o.batchApi) return cost;
  return Math.round(cost * (1 - plan.settings.batchApi.discount) * 1_000_000) / 1_000_000;
}
