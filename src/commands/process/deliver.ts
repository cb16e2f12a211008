import { batchCards, type ExportResult, type ExportTally, exportBatch } from '../../batch/export.ts';
import type { RunOutcome } from '../../batch/runner.ts';
import type { PushSummary } from '../../core/events.ts';
import type { CommandContext } from '../context.ts';
import type { OpenRun } from './open.ts';
import type { ProcessOptions } from './options.ts';
import type { RunPlan } from './plan.ts';

/** Where the cards went, if anywhere. */
export interface Delivery {
  written: ExportResult | undefined;
  pushed: PushSummary | undefined;
  /** Items the output saw and those among them that made no card (undefined: no output made). */
  tally: ExportTally | undefined;
}

async function pushBatch(
  ctx: CommandContext,
  o: ProcessOptions,
  plan: RunPlan,
  run: OpenRun,
  tally: ExportTally,
): Promise<PushSummary> {
  const { pushToAnkiConnect } = await import('../../output/anki-connect.ts');
  const { publicUrl } = await import('../../core/provider-key.ts');
  const url = plan.settings.ankiConnectUrl;
  const talk = !o.quiet && !o.json;
  const result = await pushToAnkiConnect(
    batchCards(run.stores.results, run.batch.id, plan.pipeline, tally),
    plan.meta,
    {
      url,
      signal: o.signal,
      // A big deck takes a while to add: a line every 10 batches (1,000 notes) says it moves.
      onBatch: (p) => {
        if (talk && p.batches % 10 === 0) ctx.io.err(`AnkiConnect: ${p.sent} cards sent, ${p.added} added\n`);
      },
    },
  );
  if (talk) {
    ctx.io.err(
      `AnkiConnect: added ${result.added} note(s) to "${plan.meta.deck}"${result.duplicates ? `, ${result.duplicates} already there` : ''}${result.repeated ? `, ${result.repeated} skipped (same first field as an earlier card)` : ''}${result.failed ? `, ${result.failed} refused` : ''}\n`,
    );
    for (const failure of result.failures.slice(0, 5))
      ctx.io.err(`  refused ${failure.term}: ${failure.reason}\n`);
  }
  return {
    url: publicUrl(url),
    cards: result.added + result.duplicates + result.repeated + result.failed,
    added: result.added,
    duplicates: result.duplicates,
    repeated: result.repeated,
    failed: result.failed,
  };
}

/**
 * After the run: a finished batch's deck is renamed into place (or written from the database when
 * the live write failed, or when it goes to stdout or an .apkg) and its notes pushed to Anki when
 * asked; a stopped run's live deck is dropped, leaving the previous file as it was.
 */
export async function deliver(
  ctx: CommandContext,
  o: ProcessOptions,
  plan: RunPlan,
  run: OpenRun,
  outcome: RunOutcome,
): Promise<Delivery> {
  if (outcome.status !== 'complete') {
    run.live?.feed.abort();
    await run.live?.result.catch(() => {});
    return { written: undefined, pushed: undefined, tally: undefined };
  }
  let written: ExportResult | undefined;
  let tally: ExportTally | undefined;
  if (plan.output !== null) {
    run.live?.feed.end();
    // A live write that failed (a disk full for a while, say) gets one more try from the database.
    const live = await run.live?.result.catch(() => undefined);
    written =
      live ??
      (await exportBatch({
        results: run.stores.results,
        batchId: run.batch.id,
        pipeline: plan.pipeline,
        output: plan.output,
        format: plan.format,
        meta: plan.meta,
      }));
    tally = written.tally;
    run.events.emit({
      type: 'output_written',
      batchId: run.batch.id,
      path: written.path,
      cards: written.cards,
      format: plan.format,
    });
  }
  let pushed: PushSummary | undefined;
  if (o.to === 'anki-connect') {
    const pushTally: ExportTally = { items: 0, withoutCards: 0 };
    pushed = await pushBatch(ctx, o, plan, run, pushTally);
    tally ??= pushTally;
    run.events.emit({ type: 'anki_connect_pushed', batchId: run.batch.id, ...pushed });
  }
  return { written, pushed, tally };
}
