import type { Command } from 'commander';
import type { SettingPath } from '../config/settings-table.ts';
import { addSettingOptions, jsonCommand, type Run, settingFlags, settingOption } from './register.ts';

const handlers = () => import('./config.ts');

/** The settings `config init` asks about, besides the provider's (it writes only these). */
const INIT_SETTINGS: readonly SettingPath[] = [
  'sourceLanguage',
  'targetLanguage',
  'deck',
  'limiter.rpm',
  'limiter.tpm',
];

/** `flashcards config init|show|validate|path`. */
export function registerConfig(program: Command, run: Run): void {
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
  $ flashcards config path
  $ flashcards config path --json`,
    );
  const init = addSettingOptions(
    config
      .command('init')
      .description('Write a .flashcardrc (interactive wizard, or --yes with flags)')
      .option('-y, --yes', 'no questions: use flags and defaults'),
    'provider',
  );
  for (const path of INIT_SETTINGS) {
    // The wizard names the deck after the language, whatever the pipeline.
    init.addOption(
      settingOption(path, path === 'deck' ? { defaultHelp: '<source language> Vocabulary' } : {}),
    );
  }
  init
    .option('--force', 'overwrite an existing .flashcardrc')
    .option('--file <path>', 'where to write (default ./.flashcardrc)')
    .action(run(async (ctx, _opts: unknown, cmd: Command) => (await handlers()).configInit(ctx, cmd.opts())));
  addSettingOptions(
    jsonCommand(config, run, {
      usage: 'show',
      description: 'The resolved configuration and where each value comes from',
      handler: handlers,
      call: (m, ctx, { json, cmd }) => m.configShow(ctx, { json, flags: settingFlags(cmd) }),
    }),
    'provider',
  );
  config
    .command('validate')
    .description('Check a config file (default: the one found)')
    .argument('[file]')
    .action(run(async (ctx, file: string | undefined) => (await handlers()).configValidate(ctx, { file })));
  jsonCommand(config, run, {
    usage: 'path',
    description: 'Show which config file and data directory are in effect',
    handler: handlers,
    call: (m, ctx, { json }) => m.configPath(ctx, { json }),
  });
}
