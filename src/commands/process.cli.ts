import { type Command, Option } from 'commander';
import { usageError } from '../core/errors.ts';
import type { CommandContext } from './context.ts';
import { addSettingOptions, type Run, settingFlags } from './register.ts';

/** What the first and second Ctrl-C do to a run; installed by cli.ts, which owns the process. */
export interface StopSignals {
  /** Aborted by the first Ctrl-C: take no new work. */
  stop: AbortSignal;
  /** Aborted by the second (or after a grace period): cancel requests in flight. */
  hard: AbortSignal;
  onHardExit: (fn: () => void) => void;
  dispose: () => void;
}

interface ProcessFlags {
  output?: string;
  stdout?: boolean;
  to?: 'file' | 'anki-connect';
  ankiUrl?: string;
  refresh?: boolean;
  new?: boolean;
  batch?: string;
  retryFailed?: boolean;
  lock?: boolean;
  batchApi?: boolean;
  wait?: boolean;
  fallback?: 'none' | 'sync';
  dryRun?: boolean;
  json?: boolean;
  progress: boolean;
  quiet?: boolean;
}

const SETTINGS_HEADING = 'Settings (also read from FLASHCARDS_* variables and .flashcardrc; flags win):';

/** `flashcards process <input>`: the run's own options, then every setting that has a flag. */
export function registerProcess(
  program: Command,
  run: Run,
  installSignals: (ctx: CommandContext) => StopSignals,
): void {
  const cmd = program
    .command('process')
    .description('Make flashcards for every term in a word list (CSV, TSV or text; - for stdin)')
    .argument('[input]', 'word list file, or - for stdin (not needed with --batch <id>)')
    .usage('[options] (<input> | --batch <id>)')
    .option('-o, --output <file>', 'output file (- for stdout; default <input>.deck.tsv)')
    .option('--stdout', 'write the deck to stdout (same as -o -)')
    .addOption(
      new Option('--to <destination>', 'where the cards go: a file, or a running Anki (--anki-url)').choices([
        'file',
        'anki-connect',
      ]),
    )
    .option('--refresh', 'ignore cached responses and store fresh ones')
    .option('--new', 'start a fresh batch instead of resuming the matching one')
    .option('--batch <id>', 'resume a named batch from its stored items (the input is not read)')
    .option('--retry-failed', 'queue the failed items of the batch again')
    .option('--lock', 'exit 4 at once if another run works on the same batch, instead of cooperating')
    .option(
      '--batch-api',
      "use the provider's batch API (half price, answers within 24 h): collect what is finished, submit what is ready, exit 75 while work is out",
    )
    .option('--wait', 'with --batch-api: keep polling until the batch is done instead of exiting 75')
    .addOption(
      new Option(
        '--fallback <how>',
        'with --batch-api: jobs the batch API failed --max-attempts times fail (none), or go as ordinary requests (sync)',
      )
        .choices(['none', 'sync'])
        .default('none'),
    )
    .option(
      '--dry-run',
      'check the input (or --batch) and the output path, estimate calls, tokens, cost and time; call nothing',
    )
    .option('--json', 'print one JSON summary object on stdout and nothing else')
    .option('--no-progress', 'no progress display')
    .option('-q, --quiet', 'print nothing but errors (for cron)')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards process words.csv -o deck.tsv
  $ flashcards process words.txt --provider mock             # offline, placeholder cards
  $ cat words.txt | flashcards process - --format jsonl -o -
  $ flashcards process words.csv --rpm 500 --max-duration 25m --quiet   # from cron
  $ flashcards process --batch b1a2b3c4d5e6 -o deck.tsv      # resume a batch by its id
  $ flashcards process words.csv -o deck.tsv --batch-api --quiet   # from cron: exit 75 until done`,
    );
  addSettingOptions(cmd, 'all', SETTINGS_HEADING).action(
    run(async (ctx, input: string | undefined, opts: ProcessFlags) => {
      // A named batch holds its items; anything else needs the word list (commander's wording).
      if (input === undefined && opts.batch === undefined) {
        throw usageError("missing required argument 'input'");
      }
      // Contradictory flags are refused before anything heavy is loaded.
      if (opts.stdout && opts.output !== undefined && opts.output !== '-') {
        throw usageError('--stdout and -o name two outputs; use one of them');
      }
      if (opts.ankiUrl !== undefined && opts.to !== 'anki-connect') {
        throw usageError('--anki-url only matters with --to anki-connect', 'add --to anki-connect');
      }
      if ((opts.wait || opts.fallback === 'sync') && !opts.batchApi) {
        throw usageError(
          `--${opts.wait ? 'wait' : 'fallback'} only matters with --batch-api`,
          'add --batch-api',
        );
      }
      const flags = settingFlags(cmd);
      if (opts.dryRun) {
        return (await import('./dry-run.ts')).dryRun(ctx, {
          input,
          batch: opts.batch,
          retryFailed: Boolean(opts.retryFailed),
          output: opts.stdout ? '-' : opts.output,
          to: opts.to,
          flags,
          json: Boolean(opts.json),
          batchApi: Boolean(opts.batchApi),
        });
      }
      const { processCommand } = await import('./process.ts');
      const signals = installSignals(ctx);
      try {
        return await processCommand(ctx, {
          input,
          output: opts.stdout ? '-' : opts.output,
          to: opts.to,
          flags,
          json: Boolean(opts.json),
          progress: opts.progress !== false,
          quiet: Boolean(opts.quiet),
          newBatch: Boolean(opts.new),
          batch: opts.batch,
          retryFailed: Boolean(opts.retryFailed),
          lock: Boolean(opts.lock),
          refresh: Boolean(opts.refresh),
          batchApi: opts.batchApi
            ? { wait: Boolean(opts.wait), fallback: opts.fallback ?? 'none' }
            : undefined,
          stopSignal: signals.stop,
          signal: signals.hard,
          onHardExit: signals.onHardExit,
        });
      } finally {
        signals.dispose();
      }
    }),
  );
}
