import { readFileSync } from 'node:fs';
import { Argument, Command, CommanderError, Option } from 'commander';
import type { CommandContext } from './commands/context.ts';
import { ExitCode, FlashcardsError, isFlashcardsError, storageError, usageError } from './core/errors.ts';
import { packageFile } from './core/package-root.ts';
import { OUTPUT_FORMATS } from './output/types.ts';

/**
 * The command-line entry: declares commands and options, lazily imports each handler (so
 * `--version` loads almost nothing), and is the one place that turns errors into exit codes.
 */

interface GlobalOptions {
  home?: string;
  config?: string;
  verbose?: boolean;
}

const version = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string })
  .version;

async function context(program: Command): Promise<CommandContext> {
  const globals = program.opts<GlobalOptions>();
  const [{ processIo }, { systemClock }, { resolveHome }] = await Promise.all([
    import('./commands/context.ts'),
    import('./core/clock.ts'),
    import('./core/home.ts'),
  ]);
  return {
    home: resolveHome(globals.home),
    cwd: process.cwd(),
    env: process.env,
    io: processIo(),
    clock: systemClock,
    verbose: Boolean(globals.verbose) || process.env['FLASHCARDS_DEBUG'] === '1',
    configFile: globals.config,
  };
}

/** Maps process flags onto config paths; only flags the user actually gave are passed on. */
function configFlags(cmd: Command): Record<string, unknown> {
  const map: Record<string, string> = {
    provider: 'provider',
    baseUrl: 'baseUrl',
    model: 'model',
    concurrency: 'concurrency',
    timeout: 'timeout',
    format: 'format',
    rpm: 'limiter.rpm',
    tpm: 'limiter.tpm',
    burstSeconds: 'limiter.burstSeconds',
    shards: 'limiter.shards',
    maxDuration: 'maxDuration',
    maxAttempts: 'retry.maxAttempts',
    maxWait: 'breaker.maxWait',
    deck: 'deck',
    noteType: 'noteType',
    tags: 'tags',
    fields: 'fields',
    pipeline: 'pipeline',
    ankiUrl: 'ankiConnectUrl',
    sourceLanguage: 'sourceLanguage',
    targetLanguage: 'targetLanguage',
    cacheTtl: 'cache.ttl',
    staleIfError: 'cache.staleIfError',
    cache: 'cache.enabled',
  };
  const out: Record<string, unknown> = {};
  const opts = cmd.opts<Record<string, unknown>>();
  for (const [flag, path] of Object.entries(map)) {
    if (cmd.getOptionValueSource(flag) === 'cli' && opts[flag] !== undefined) out[path] = opts[flag];
  }
  return out;
}

interface ExportFlags {
  output: string;
  format?: string;
  fields?: string;
  deck?: string;
  noteType?: string;
  tags?: string;
}

function addProviderOptions(cmd: Command): Command {
  return cmd
    .option('--provider <name>', 'provider preset: openrouter, openai, groq, ollama, llamacpp, custom, mock')
    .option('--base-url <url>', 'OpenAI-compatible API base URL (env FLASHCARDS_BASE_URL)')
    .option('--model <id>', 'model id, e.g. openai/gpt-4o-mini');
}

export function buildProgram(): Command {
  const program = new Command('flashcards')
    .description('Turn word lists into study flashcards through any OpenAI-compatible API.')
    .version(version, '-V, --version')
    .option('--home <dir>', 'data directory (env FLASHCARDS_HOME; default ~/.local/share/flashcards)')
    .option('--config <file>', 'config file (default: .flashcardrc searched from the current directory up)')
    .option('--verbose', 'show stack traces and debug detail')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const run =
    <A extends unknown[]>(handler: (ctx: CommandContext, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      const ctx = await context(program);
      process.exitCode = await handler(ctx, ...args);
    };

  addProviderOptions(
    program
      .command('process')
      .description('Make flashcards for every term in a word list (CSV, TSV or text; - for stdin)')
      .argument('<input>', 'word list file, or - for stdin')
      .option('-o, --output <file>', 'output file (- for stdout; default <input>.deck.tsv)')
      .option('--stdout', 'write the deck to stdout (same as -o -)')
      .addOption(
        new Option('--format <format>', 'output format (default from the -o extension, else anki)').choices(
          OUTPUT_FORMATS,
        ),
      )
      .option('--pipeline <name|file>', 'built-in pipeline (vocabulary, cloze, topics) or a pipeline file')
      .option('--fields <list>', 'fields/columns to write, in order, e.g. Front,Back,tags')
      .addOption(
        new Option('--to <destination>', 'where the cards go: a file, or a running Anki').choices([
          'file',
          'anki-connect',
        ]),
      )
      .option('--anki-url <url>', 'AnkiConnect address (default http://127.0.0.1:8765)')
      .option('--concurrency <n>', 'requests in flight at once (default 8)')
      .option('--timeout <duration>', 'per-request timeout, e.g. 30s (default 60s)')
      .option('--rpm <n>', 'requests per minute allowed by your provider')
      .option('--tpm <n>', 'tokens per minute allowed by your provider')
      .option('--burst-seconds <s>', 'rate limiter burst, in seconds of budget (default 1)')
      .option('--shards <n>', 'rate limiter shards (default auto)')
      .option('--max-attempts <n>', 'attempts per request before an item fails (default 6)')
      .option(
        '--max-wait <duration>',
        'longest wait for an open circuit breaker before stopping (default 3m)',
      )
      .option('--max-duration <duration>', 'stop cleanly after this long, e.g. 25m (for cron)')
      .option('--deck <name>', "Anki deck name (default: the pipeline's)")
      .option('--note-type <name>', "Anki note type (default: the pipeline's)")
      .option('--tags <list>', 'tags added to every card, comma-separated (default flashcards)')
      .option('--source-language <lang>', 'language of the terms (default Korean)')
      .option('--target-language <lang>', "learner's language (default English)")
      .option('--cache-ttl <duration>', 'how long cached responses live, e.g. 30d (0 = forever)')
      .option('--no-cache', 'neither read nor write the response cache')
      .option('--refresh', 'ignore cached responses and store fresh ones')
      .option('--stale-if-error', 'serve expired cache entries while the circuit breaker is open')
      .option('--new', 'start a fresh batch instead of resuming the matching one')
      .option('--batch <id>', 'resume a named batch')
      .option('--retry-failed', 'queue the failed items of the batch again')
      .option('--lock', 'exit 4 at once if another run works on the same batch, instead of cooperating')
      .option('--dry-run', 'read and check the input, estimate calls, tokens, cost and time; call nothing')
      .option('--json', 'print one JSON summary object on stdout and nothing else')
      .option('--no-progress', 'no progress display')
      .option('-q, --quiet', 'print nothing but errors (for cron)'),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards process words.csv -o deck.tsv
  $ flashcards process words.txt --provider mock             # offline, placeholder cards
  $ cat words.txt | flashcards process - --format jsonl -o -
  $ flashcards process words.csv --rpm 500 --max-duration 25m --quiet   # from cron`,
    )
    .action(async (input: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.opts<Record<string, unknown>>();
      // Contradictory flags are refused before anything heavy is loaded.
      if (opts['stdout'] && opts['output'] !== undefined && opts['output'] !== '-') {
        throw usageError('--stdout and -o name two outputs; use one of them');
      }
      if (opts['ankiUrl'] !== undefined && opts['to'] !== 'anki-connect') {
        throw usageError('--anki-url only matters with --to anki-connect', 'add --to anki-connect');
      }
      const ctx = await context(program);
      const flags = configFlags(cmd);
      if (opts['dryRun']) {
        const { dryRun } = await import('./commands/dry-run.ts');
        process.exitCode = await dryRun(ctx, { input, flags, json: Boolean(opts['json']) });
        return;
      }
      const { processCommand } = await import('./commands/process.ts');
      const signals = installSignalHandlers(ctx);
      try {
        process.exitCode = await processCommand(ctx, {
          input,
          output: opts['stdout'] ? '-' : (opts['output'] as string | undefined),
          to: opts['to'] as 'file' | 'anki-connect' | undefined,
          flags,
          json: Boolean(opts['json']),
          progress: opts['progress'] !== false,
          quiet: Boolean(opts['quiet']),
          newBatch: Boolean(opts['new']),
          batch: opts['batch'] as string | undefined,
          retryFailed: Boolean(opts['retryFailed']),
          lock: Boolean(opts['lock']),
          refresh: Boolean(opts['refresh']),
          stopSignal: signals.stop,
          signal: signals.hard,
          onHardExit: signals.onHardExit,
        });
      } finally {
        signals.dispose();
      }
    });

  const cache = program
    .command('cache')
    .description('Inspect and manage the response cache')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards cache stats
  $ flashcards cache list --limit 5
  $ flashcards cache show 3fa9
  $ flashcards cache prune
  $ flashcards cache clear --older-than 90d --yes`,
    );
  cache
    .command('stats')
    .description('Entries, sizes, compression ratio, hit/miss counts')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, opts: { json?: boolean }) =>
        (await import('./commands/cache.ts')).cacheStats(ctx, { json: Boolean(opts.json) }),
      ),
    );
  cache
    .command('list')
    .description('Recent cached responses')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, opts: { limit: string; json?: boolean }) =>
        (await import('./commands/cache.ts')).cacheList(ctx, {
          limit: Number(opts.limit),
          json: Boolean(opts.json),
        }),
      ),
    );
  cache
    .command('show')
    .description('Show one cached response by key prefix')
    .argument('<key-prefix>')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, prefix: string, opts: { json?: boolean }) =>
        (await import('./commands/cache.ts')).cacheShow(ctx, { prefix, json: Boolean(opts.json) }),
      ),
    );
  cache
    .command('prune')
    .description('Delete expired entries and reclaim space')
    .action(run(async (ctx) => (await import('./commands/cache.ts')).cachePrune(ctx, {})));
  cache
    .command('clear')
    .description('Delete cached responses (all, or by model / age)')
    .option('--model <id>', 'only this model')
    .option('--older-than <duration>', 'only entries older than this, e.g. 30d')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(
      run(async (ctx, opts: { model?: string; olderThan?: string; yes?: boolean }) =>
        (await import('./commands/cache.ts')).cacheClear(ctx, {
          model: opts.model,
          olderThan: opts.olderThan,
          yes: Boolean(opts.yes),
        }),
      ),
    );

  const breaker = program
    .command('breaker')
    .description('Inspect and control the circuit breaker')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards breaker status
  $ flashcards breaker isolate --reason 'provider maintenance'
  $ flashcards breaker close
  $ flashcards breaker history --limit 10`,
    );
  breaker
    .command('status')
    .description('State, failure ratio, retry time of each provider breaker')
    .option('--json', 'machine-readable output')
    .option('--all', 'every breaker')
    .action(
      run(async (ctx, opts: { json?: boolean; all?: boolean }) =>
        (await import('./commands/breaker.ts')).breakerStatus(ctx, {
          json: Boolean(opts.json),
          all: Boolean(opts.all),
        }),
      ),
    );
  addProviderOptions(
    breaker
      .command('isolate')
      .description('Hold the breaker open until closed by hand (stops running batches within a second)')
      .option('--reason <text>', 'why, shown in status')
      .option('--key <key>', 'only this breaker (default: all)'),
  ).action(async (_o: unknown, cmd: Command) => {
    const opts = cmd.opts<{ reason?: string; key?: string }>();
    const ctx = await context(program);
    const defaultKey = await currentProviderKey(ctx, configFlags(cmd));
    process.exitCode = await (await import('./commands/breaker.ts')).breakerIsolate(ctx, {
      reason: opts.reason,
      key: opts.key,
      defaultKey,
    });
  });
  addProviderOptions(
    breaker
      .command('close')
      .description('Close the breaker and reset its statistics')
      .option('--key <key>', 'only this breaker'),
  ).action(async (_o: unknown, cmd: Command) => {
    const opts = cmd.opts<{ key?: string }>();
    const ctx = await context(program);
    const defaultKey = await currentProviderKey(ctx, configFlags(cmd));
    process.exitCode = await (await import('./commands/breaker.ts')).breakerClose(ctx, {
      key: opts.key,
      defaultKey,
    });
  });
  breaker
    .command('history')
    .description('Recent breaker transitions with time and cause')
    .option('--json', 'machine-readable output')
    .option('--limit <n>', 'how many', '50')
    .action(
      run(async (ctx, opts: { json?: boolean; limit: string }) =>
        (await import('./commands/breaker.ts')).breakerHistory(ctx, {
          json: Boolean(opts.json),
          limit: Number(opts.limit),
        }),
      ),
    );

  const limiter = program
    .command('limiter')
    .description('Inspect and reset the shared rate limiter')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards limiter status
  $ flashcards limiter status --json
  $ flashcards limiter reset`,
    );
  limiter
    .command('status')
    .description('Each bucket and shard: rate, burst, tokens available, pause, provider limits')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, opts: { json?: boolean }) =>
        (await import('./commands/limiter.ts')).limiterStatus(ctx, { json: Boolean(opts.json) }),
      ),
    );
  limiter
    .command('reset')
    .description('Forget limiter state (all keys, or one key prefix)')
    .argument('[key]')
    .action(
      run(async (ctx, key: string | undefined) =>
        (await import('./commands/limiter.ts')).limiterReset(ctx, { key }),
      ),
    );

  const batches = program
    .command('batches')
    .description('List, inspect, retry and export batches')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards batches list
  $ flashcards batches show b1a2b3c4d5e6
  $ flashcards batches retry b1a2b3c4d5e6
  $ flashcards batches export b1a2b3c4d5e6 -o deck.tsv
  $ flashcards batches rm b1a2b3c4d5e6`,
    );
  batches
    .command('list')
    .description('Batches with status, progress, tokens and cost')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, opts: { json?: boolean }) =>
        (await import('./commands/batches.ts')).batchesList(ctx, { json: Boolean(opts.json) }),
      ),
    );
  batches
    .command('show')
    .description('Per-stage counts, failures and timings of one batch')
    .argument('<id>')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, id: string, opts: { json?: boolean }) =>
        (await import('./commands/batches.ts')).batchesShow(ctx, { id, json: Boolean(opts.json) }),
      ),
    );
  batches
    .command('retry')
    .description('Queue the failed items of a batch again (then run process again)')
    .argument('<id>')
    .action(
      run(async (ctx, id: string) => (await import('./commands/batches.ts')).batchesRetry(ctx, { id })),
    );
  batches
    .command('export')
    .description('Write the deck from stored results, without any API call')
    .argument('<id>')
    .requiredOption('-o, --output <file>', 'output file (- for stdout)')
    .addOption(new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS))
    .option('--fields <list>', 'fields/columns to write, in order, e.g. Front,Back,tags')
    .option('--deck <name>', 'Anki deck name (default: the one the batch was last run with)')
    .option('--note-type <name>', 'Anki note type (default: the one the batch was last run with)')
    .option('--tags <list>', 'tags added to every card, comma-separated')
    .action(
      run(async (ctx, id: string, opts: ExportFlags) =>
        (await import('./commands/batches.ts')).batchesExport(ctx, {
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
  batches
    .command('rm')
    .description('Delete a batch and its stored results')
    .argument('<id>')
    .action(run(async (ctx, id: string) => (await import('./commands/batches.ts')).batchesRm(ctx, { id })));

  const pipelines = program
    .command('pipelines')
    .description('List the built-in pipelines and show one as an editable pipeline file')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards pipelines list
  $ flashcards pipelines show vocabulary > my-pipeline.yaml
  $ flashcards process words.csv --pipeline my-pipeline.yaml`,
    );
  pipelines
    .command('list')
    .description('Built-in pipelines with their stages and card fields')
    .option('--json', 'machine-readable output')
    .action(
      run(async (ctx, opts: { json?: boolean }) =>
        (await import('./commands/pipelines.ts')).pipelinesList(ctx, { json: Boolean(opts.json) }),
      ),
    );
  pipelines
    .command('show')
    .description('One pipeline (built-in name or file) as a self-contained YAML file, prompts inline')
    .argument('<name|file>')
    .option('--json', 'as JSON instead of YAML')
    .action(
      run(async (ctx, ref: string, opts: { json?: boolean }) =>
        (await import('./commands/pipelines.ts')).pipelinesShow(ctx, { ref, json: Boolean(opts.json) }),
      ),
    );

  const config = program
    .command('config')
    .description('Create, show and check configuration')
    .addHelpText(
      'after',
      `
Examples:
  $ flashcards config init
  $ flashcards config init --yes --provider openai --model gpt-4o-mini --rpm 500
  $ flashcards config show
  $ flashcards config validate .flashcardrc
  $ flashcards config path`,
    );
  addProviderOptions(
    config
      .command('init')
      .description('Write a .flashcardrc (interactive wizard, or --yes with flags)')
      .option('-y, --yes', 'no questions: use flags and defaults')
      .option('--source-language <lang>')
      .option('--target-language <lang>')
      .option('--deck <name>')
      .option('--rpm <n>')
      .option('--tpm <n>')
      .option('--force', 'overwrite an existing .flashcardrc')
      .option('--file <path>', 'where to write (default ./.flashcardrc)'),
  ).action(async (_o: unknown, cmd: Command) => {
    const ctx = await context(program);
    process.exitCode = await (await import('./commands/config.ts')).configInit(ctx, cmd.opts());
  });
  addProviderOptions(
    config
      .command('show')
      .description('The resolved configuration and where each value comes from')
      .option('--json', 'machine-readable output'),
  ).action(async (_o: unknown, cmd: Command) => {
    const ctx = await context(program);
    process.exitCode = await (await import('./commands/config.ts')).configShow(ctx, {
      json: Boolean(cmd.opts()['json']),
      flags: configFlags(cmd),
    });
  });
  config
    .command('validate')
    .description('Check a config file (default: the one found)')
    .argument('[file]')
    .action(
      run(async (ctx, file: string | undefined) =>
        (await import('./commands/config.ts')).configValidate(ctx, { file }),
      ),
    );
  config
    .command('path')
    .description('Show which config file and data directory are in effect')
    .action(run(async (ctx) => (await import('./commands/config.ts')).configPath(ctx, {})));

  addProviderOptions(
    program
      .command('doctor')
      .description('Check Node, data directory, databases, config, API key and provider'),
  )
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      '\nExamples:\n  $ flashcards doctor\n  $ flashcards doctor --provider ollama --model llama3.1',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = await context(program);
      process.exitCode = await (await import('./commands/doctor.ts')).doctor(ctx, {
        json: Boolean(cmd.opts()['json']),
        flags: configFlags(cmd),
      });
    });

  program
    .command('completion')
    .description('Print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      `
Install:
  bash: echo 'source <(flashcards completion bash)' >> ~/.bashrc
  zsh:  echo 'source <(flashcards completion zsh)' >> ~/.zshrc     # after compinit
  fish: flashcards completion fish > ~/.config/fish/completions/flashcards.fish`,
    )
    .action(
      run(async (ctx, shell: string) =>
        (await import('./commands/completion.ts')).completion(ctx, { shell, program }),
      ),
    );

  return program;
}

async function currentProviderKey(
  ctx: CommandContext,
  flags: Record<string, unknown>,
): Promise<string | undefined> {
  try {
    const [{ loadSettings }, { providerKey }] = await Promise.all([
      import('./config/index.ts'),
      import('./core/provider-key.ts'),
    ]);
    const { settings } = await loadSettings({
      cwd: ctx.cwd,
      env: ctx.env,
      configFile: ctx.configFile,
      flags,
    });
    return providerKey(settings);
  } catch {
    return undefined;
  }
}

/** How long in-flight requests may finish after the first Ctrl-C before they are cancelled. */
const GRACE_MS = 10_000;

function installSignalHandlers(ctx: CommandContext): {
  stop: AbortSignal;
  hard: AbortSignal;
  onHardExit: (fn: () => void) => void;
  dispose: () => void;
} {
  const stop = new AbortController();
  const hard = new AbortController();
  const cleanups: (() => void)[] = [];
  let grace: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      ctx.io.err(
        `\n${signal}: stopping; letting requests in flight finish (press Ctrl-C again to quit now)\n`,
      );
      stop.abort();
      grace = setTimeout(() => hard.abort(), GRACE_MS);
      grace.unref();
      return;
    }
    hard.abort();
    for (const fn of cleanups) {
      try {
        fn();
      } catch {
        // Exiting anyway: state on disk is consistent because every write is its own transaction.
      }
    }
    ctx.io.err(`${signal}: quitting now; run the same command again to resume\n`);
    process.exit(ExitCode.interrupted);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stop: stop.signal,
    hard: hard.signal,
    onHardExit: (fn) => cleanups.push(fn),
    dispose: () => {
      clearTimeout(grace);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function printError(e: FlashcardsError, verbose: boolean): void {
  process.stderr.write(`error: ${e.message}\n`);
  if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
  if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
}

/** The only place that decides the process's exit code. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const verbose = argv.includes('--verbose') || process.env['FLASHCARDS_DEBUG'] === '1';
  // dist/ is minified: stack traces point into src/ through its source maps (commands load later).
  if (verbose) process.setSourceMapsEnabled(true);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // 'commander.help' with a non-zero code is help shown for a missing (sub)command: a usage error.
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        (e.code === 'commander.help' && e.exitCode === 0)
      ) {
        process.exitCode = ExitCode.ok;
        return;
      }
      // commander already printed its own message (or the help).
      process.exitCode = ExitCode.usage;
      return;
    }
    if (isFlashcardsError(e)) {
      printError(e, verbose);
      process.exitCode = e.exitCode;
      return;
    }
    // A full or failing disk is the machine's problem, not a bug: say so, whichever write hit it.
    const storage = storageError(e);
    if (storage) {
      printError(storage, verbose);
      process.exitCode = storage.exitCode;
      return;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    printError(
      new FlashcardsError('internal', `unexpected error: ${err.message}`, {
        hint: 'this is a bug; run with --verbose for details and report it',
      }),
      false,
    );
    if (verbose && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = ExitCode.aborted;
  }
}
