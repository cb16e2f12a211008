import type { Command } from 'commander';
import type { CommandContext } from './context.ts';
import type { Run } from './register.ts';

const handlers = () => import('./monitor.ts');

interface MonitorFlags {
  once?: boolean;
  json?: boolean;
  interval?: string;
}

/** `flashcards monitor [--once] [--json] [--interval <duration>]`. */
export function registerMonitor(program: Command, run: Run): void {
  program
    .command('monitor')
    .description('Live view of running batches, the rate limiter, breakers and cache (--store: every host)')
    .option('--once', 'print one snapshot and exit (what happens anyway without a terminal)')
    .option('--json', 'print one snapshot as JSON and exit')
    .option('--interval <duration>', 'time between refreshes of the live view (default: 1s)')
    .addHelpText(
      'after',
      `
In a terminal the view redraws in place until Ctrl-C. It only reads: no lease is taken, nothing
is created. Rates and ETAs need two looks, so a single snapshot shows none.

Examples:
  $ flashcards monitor
  $ flashcards monitor --store redis://queue.internal:6379/0
  $ flashcards monitor --json | jq '.batches[] | {id, done, total}'`,
    )
    .action(
      run(async (ctx: CommandContext, opts: MonitorFlags) => {
        const { monitor } = await handlers();
        const live = process.stdout.isTTY && !opts.once && !opts.json;
        if (!live) return monitor(ctx, { json: Boolean(opts.json), once: true, interval: opts.interval });
        // Ctrl-C ends the view: the loop stops, the cursor comes back, the command exits 0.
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          return await monitor(ctx, {
            json: false,
            once: false,
            interval: opts.interval,
            signal: stop.signal,
            screen: {
              write: (text) => void process.stdout.write(text),
              get columns() {
                return process.stdout.columns || 80;
              },
              get rows() {
                return process.stdout.rows || 24;
              },
            },
          });
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}
