import type { Command } from 'commander';
import { jsonCommand, type Run } from './register.ts';

const handlers = () => import('./limiter.ts');

/** `flashcards limiter status|reset`. */
export function registerLimiter(program: Command, run: Run): void {
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
  jsonCommand(limiter, run, {
    usage: 'status',
    description: 'Each bucket and shard: rate, burst, tokens available, pause, provider limits',
    handler: handlers,
    call: (m, ctx, { json }) => m.limiterStatus(ctx, { json }),
  });
  limiter
    .command('reset')
    .description('Forget limiter state (all keys, or one key prefix)')
    .argument('[key]')
    .action(run(async (ctx, key: string | undefined) => (await handlers()).limiterReset(ctx, { key })));
}
