import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerBatches } from './commands/batches.cli.ts';
import { registerBreaker } from './commands/breaker.cli.ts';
import { registerCache } from './commands/cache.cli.ts';
import { registerCompletion } from './commands/completion.cli.ts';
import { registerConfig } from './commands/config.cli.ts';
import { type CommandContext, colorAllowed } from './commands/context.ts';
import { registerDoctor } from './commands/doctor.cli.ts';
import { registerLimiter } from './commands/limiter.cli.ts';
import { registerMonitor } from './commands/monitor.cli.ts';
import { registerPipelines } from './commands/pipelines.cli.ts';
import { registerProcess, type StopSignals } from './commands/process.cli.ts';
import { type Run, settingOption } from './commands/register.ts';
import { ExitCode, FlashcardsError, isFlashcardsError, storageError } from './core/errors.ts';
import { packageFile } from './core/package-root.ts';

/**
 * The command-line entry: the global options, one registration module per command group (each
 * declares its subcommands and imports its handlers lazily, so `--version` loads almost nothing),
 * and the one place that turns errors into exit codes.
 */

interface GlobalOptions {
  home?: string;
  config?: string;
  store?: string;
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
    store: globals.store,
  };
}

export function buildProgram(): Command {
  const program = new Command('flashcards')
    .description('Turn word lists into study flashcards through any OpenAI-compatible API.')
    .version(version, '-V, --version')
    .option('--home <dir>', 'data directory (env FLASHCARDS_HOME; default ~/.local/share/flashcards)')
    .option('--config <file>', 'config file (default: .flashcardrc searched from the current directory up)')
    .addOption(settingOption('store'))
    .option('--verbose', 'show stack traces and debug detail')
    .showHelpAfterError('(run with --help for usage)')
    // commander's own parse errors ("error: unknown option") get the same red label as ours.
    .configureOutput({ outputError: (text, write) => write(text.replace(/^error:/, errorLabel())) })
    .exitOverride();

  // Every action goes through here: the context is built at the edge, the handler's result is the exit code.
  const run: Run =
    (handler) =>
    async (...args) => {
      const ctx = await context(program);
      process.exitCode = await handler(ctx, ...args);
    };

  registerProcess(program, run, installSignalHandlers);
  registerCache(program, run);
  registerBreaker(program, run);
  registerLimiter(program, run);
  registerBatches(program, run);
  registerMonitor(program, run);
  registerPipelines(program, run);
  registerConfig(program, run);
  registerDoctor(program, run);
  registerCompletion(program, run);
  return program;
}

/** How long in-flight requests may finish after the first Ctrl-C before they are cancelled. */
const GRACE_MS = 10_000;

/** Ctrl-C handling for `process`; here because a second Ctrl-C exits, and only the entry exits. */
function installSignalHandlers(ctx: CommandContext): StopSignals {
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

/**
 * "error:" in red when stderr is a terminal that takes colour (default: as processIo decides), so
 * the line stands out from the output before it; plain in a pipe, a file, or with NO_COLOR.
 */
export function errorLabel(color = colorAllowed(process.stderr)): string {
  return color ? '\u001b[31merror:\u001b[39m' : 'error:';
}

function printError(e: FlashcardsError, verbose: boolean): void {
  process.stderr.write(`${errorLabel()} ${e.message}\n`);
  if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
  if (verbose && e.stack) process.stderr.write(`${e.stack}\n`);
}

/** The only place that decides the process's exit code. */
export async function main(argv: string[]): Promise<void> {
  // A reader that goes away (`flashcards batches list | head -1`) is not an error of ours: stop
  // writing and exit quietly, as cat and grep do, instead of dying on an unhandled EPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(process.exitCode ?? ExitCode.ok);
    });
  }
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
