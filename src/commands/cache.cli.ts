import type { Command } from 'commander';
import { countOption, type JsonInput, jsonCommand, type Run } from './register.ts';

const handlers = () => import('./cache.ts');

/** `flashcards cache stats|list|show|prune|clear`. */
export function registerCache(program: Command, run: Run): void {
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
  jsonCommand(cache, run, {
    usage: 'stats',
    description: 'Entries, sizes, compression ratio, hit/miss counts',
    handler: handlers,
    call: (m, ctx, { json }) => m.cacheStats(ctx, { json }),
  });
  jsonCommand(cache, run, {
    usage: 'list',
    description: 'Recent cached responses',
    handler: handlers,
    call: (m, ctx, { json, opts }: JsonInput<{ limit: number | string }>) =>
      m.cacheList(ctx, { json, limit: opts.limit }),
  }).addOption(countOption('--limit <n>', 'how many', 20));
  jsonCommand(cache, run, {
    usage: 'show <key-prefix>',
    description: 'Show one cached response by key prefix',
    handler: handlers,
    call: (m, ctx, { json, arg }) => m.cacheShow(ctx, { prefix: arg, json }),
  });
  jsonCommand(cache, run, {
    usage: 'prune',
    description: 'Delete expired entries and reclaim space',
    handler: handlers,
    call: (m, ctx, { json }) => m.cachePrune(ctx, { json }),
  });
  jsonCommand(cache, run, {
    usage: 'clear',
    description: 'Delete cached responses (all, or by model / age)',
    handler: handlers,
    call: (m, ctx, { json, opts }: JsonInput<{ model?: string; olderThan?: string; yes?: boolean }>) =>
      m.cacheClear(ctx, { json, model: opts.model, olderThan: opts.olderThan, yes: Boolean(opts.yes) }),
  })
    .option('--model <id>', 'only this model')
    .option('--older-than <duration>', 'only entries older than this, e.g. 30d')
    .option('-y, --yes', 'do not ask for confirmation');
}
