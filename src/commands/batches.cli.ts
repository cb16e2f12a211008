import type { Command } from 'commander';
import { addSettingOptions, jsonCommand, type Run, settingFlags, settingOption } from './register.ts';

const handlers = () => import('./batches.ts');

interface ExportFlags {
  output: string;
  format?: string;
  fields?: string;
  deck?: string;
  noteType?: string;
  tags?: string;
}

/** `flashcards batches list|show|retry|export|cancel|rm`. */
export function registerBatches(program: Command, run: Run): void {
  const batches = program
    .command('batches')
    .description('List, inspect, retry and export batches')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards batches list
  $ flashcards batches show b1a2
  $ flashcards batches retry b1a2b3c4d5e6
  $ flashcards batches export b1a2b3c4d5e6 -o deck.tsv
  $ flashcards batches rm b1a2b3c4d5e6`,
    );
  jsonCommand(batches, run, {
    usage: 'list',
    description: 'Batches with status, progress, tokens and cost',
    handler: handlers,
    call: (m, ctx, { json }) => m.batchesList(ctx, { json }),
  });
  jsonCommand(batches, run, {
    usage: 'show <id>',
    description: 'Per-stage counts, failures and timings of one batch (its id or a unique prefix)',
    handler: handlers,
    call: (m, ctx, { json, arg }) => m.batchesShow(ctx, { id: arg, json }),
  });
  batches
    .command('retry')
    .description('Queue the failed items of a batch again (then run process again)')
    .argument('<id>')
    .action(run(async (ctx, id: string) => (await handlers()).batchesRetry(ctx, { id })));
  // The deck's settings, defaulting to the batch's last run rather than to the configuration.
  const lastRun = "as in the batch's last run";
  batches
    .command('export')
    .description('Write the deck from stored results, without any API call')
    .argument('<id>')
    .requiredOption('-o, --output <file>', 'output file (- for stdout)')
    .addOption(settingOption('format', { defaultHelp: `from the -o extension, else ${lastRun}` }))
    .addOption(settingOption('fields', { defaultHelp: lastRun }))
    .addOption(settingOption('deck', { defaultHelp: lastRun }))
    .addOption(settingOption('noteType', { defaultHelp: lastRun }))
    .addOption(settingOption('tags', { defaultHelp: lastRun }))
    .action(
      run(async (ctx, id: string, opts: ExportFlags) =>
        (await handlers()).batchesExport(ctx, {
          id,
          output: opts.output,
          format: opts.format,
          fields: opts.fields,
          deck: opts.deck,
          noteType: opts.noteType,
          tags: opts.tags,
        }),
      ),
    );
  addSettingOptions(
    batches
      .command('cancel')
      .description("Cancel a batch's requests with the provider's batch API (process --batch-api)")
      .argument('<id>'),
    'provider',
  ).action(
    run(async (ctx, id: string, _opts: unknown, cmd: Command) =>
      (await handlers()).batchesCancel(ctx, { id, flags: settingFlags(cmd) }),
    ),
  );
  batches
    .command('rm')
    .description('Delete a batch and its stored results')
    .argument('<id>')
    .action(run(async (ctx, id: string) => (await handlers()).batchesRm(ctx, { id })));
}
