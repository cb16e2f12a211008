import type { Command } from 'commander';
import type { CommandContext } from './context.ts';
import {
  addSettingOptions,
  countOption,
  type JsonInput,
  jsonCommand,
  type Run,
  settingFlags,
} from './register.ts';

const handlers = () => import('./breaker.ts');

/** `flashcards breaker status|isolate|close|rm|history`. */
export function registerBreaker(program: Command, run: Run): void {
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
  $ flashcards breaker rm 'https://api.example.com/v1|old-model|0123456789ab'
  $ flashcards breaker history --limit 10`,
    );
  jsonCommand(breaker, run, {
    usage: 'status',
    description: 'State, failure ratio, retry time of each provider breaker',
    handler: handlers,
    call: (m, ctx, { json, opts }: JsonInput<{ all?: boolean }>) =>
      m.breakerStatus(ctx, { json, all: Boolean(opts.all) }),
  }).option('--all', 'every breaker');
  addSettingOptions(
    breaker
      .command('isolate')
      .description('Hold the breaker open until closed by hand (stops running batches within a second)')
      .option('--reason <text>', 'why, shown in status')
      .option('--key <key>', 'only this breaker (default: all)')
      .option('--create', 'isolate --key even though no breaker has it yet'),
    'provider',
  ).action(
    run(async (ctx, opts: { reason?: string; key?: string; create?: boolean }, cmd: Command) =>
      (await handlers()).breakerIsolate(ctx, {
        reason: opts.reason,
        key: opts.key,
        create: Boolean(opts.create),
        defaultKey: await currentProviderKey(ctx, cmd),
      }),
    ),
  );
  addSettingOptions(
    breaker
      .command('close')
      .description('Close the breaker and reset its statistics')
      .option('--key <key>', 'only this breaker'),
    'provider',
  ).action(
    run(async (ctx, opts: { key?: string }, cmd: Command) =>
      (await handlers()).breakerClose(ctx, { key: opts.key, defaultKey: await currentProviderKey(ctx, cmd) }),
    ),
  );
  breaker
    .command('rm')
    .description('Forget one breaker (state and window), e.g. of a provider no longer used')
    .argument('[key]', 'the breaker key, as `breaker status` shows it')
    .option('--key <key>', 'the same, as an option')
    .action(
      run(async (ctx, key: string | undefined, opts: { key?: string }) =>
        (await handlers()).breakerRm(ctx, { key, keyOption: opts.key }),
      ),
    );
  jsonCommand(breaker, run, {
    usage: 'history',
    description: 'Recent breaker transitions with time and cause',
    handler: handlers,
    call: (m, ctx, { json, opts }: JsonInput<{ limit: number | string }>) =>
      m.breakerHistory(ctx, { json, limit: opts.limit }),
  }).addOption(countOption('--limit <n>', 'how many', 50));
}

/** The breaker key of the provider the settings (and flags) name; undefined when they do not load. */
async function currentProviderKey(ctx: CommandContext, cmd: Command): Promise<string | undefined> {
  try {
    const [{ loadSettings }, { providerKey }] = await Promise.all([
      import('../config/index.ts'),
      import('../core/provider-key.ts'),
    ]);
    const { settings } = await loadSettings({
      cwd: ctx.cwd,
      env: ctx.env,
      configFile: ctx.configFile,
      flags: settingFlags(cmd),
    });
    return providerKey(settings);
  } catch {
    return undefined;
  }
}
