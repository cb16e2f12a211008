import { type Command, Option } from 'commander';
import {
  defaultHelp,
  SETTING_ENTRIES,
  SETTINGS,
  type SettingPath,
  type SettingSpec,
} from '../config/settings-table.ts';
import type { CommandContext } from './context.ts';

/**
 * What the command groups' registration modules (`*.cli.ts`) share. They load at start-up, so
 * they import commander and the plain settings table only; each handler is imported when its
 * command runs.
 */

/** Turns a handler into a commander action; cli.ts builds the context and records the exit code. */
export type Run = <A extends unknown[]>(
  handler: (ctx: CommandContext, ...args: A) => Promise<number>,
) => (...args: A) => Promise<void>;

/** An option made from the settings table: it knows the setting it sets. */
class SettingOption extends Option {
  readonly setting: SettingPath;

  constructor(setting: SettingPath, flags: string, description: string) {
    super(flags, description);
    this.setting = setting;
  }
}

/**
 * The commander option of a setting, with the table's help and default. A command where the flag
 * means something narrower (`batches export --deck`) passes its own help or default text.
 */
export function settingOption(
  path: SettingPath,
  override: { help?: string; defaultHelp?: string } = {},
): Option {
  const spec: SettingSpec = SETTINGS[path];
  if (!spec.flag) throw new Error(`setting ${path} has no flag`);
  const shown = override.defaultHelp ?? defaultHelp(spec);
  const option = new SettingOption(
    path,
    spec.flag.flags,
    `${override.help ?? spec.flag.help}${shown === undefined ? '' : ` (default: ${shown})`}`,
  );
  if (spec.flag.choices) option.choices(spec.flag.choices);
  return option;
}

/**
 * Adds setting flags to a command, in table order: all of them (`process`; a new setting with a
 * flag joins it here), or the provider's (`--provider`, `--base-url`, `--model`).
 */
export function addSettingOptions(cmd: Command, which: 'all' | 'provider', heading?: string): Command {
  for (const [path, { flag }] of SETTING_ENTRIES) {
    if (!flag || flag.global || (which === 'provider' && !flag.provider)) continue;
    const option = settingOption(path);
    if (heading) option.helpGroup(heading);
    cmd.addOption(option);
  }
  return cmd;
}

/** The setting flags typed on the command line, by config path: loadSettings' `flags`. */
export function settingFlags(cmd: Command): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const option of cmd.options) {
    if (!(option instanceof SettingOption)) continue;
    const name = option.attributeName();
    if (cmd.getOptionValueSource(name) === 'cli') flags[option.setting] = cmd.getOptionValue(name);
  }
  return flags;
}

/**
 * `--limit <n>` and the like. The value reaches the handler as typed (or the number default), and
 * the handler checks it with parseCount (count.ts), the one check for callers and command line
 * alike, which quotes what was typed; checking there keeps it off the start-up path.
 */
export function countOption(flags: string, help: string, fallback: number): Option {
  return new Option(flags, help).default(fallback);
}

/** What a `--json` subcommand's handler call gets from the command line. */
export interface JsonInput<O> {
  json: boolean;
  /** The subcommand's one positional argument; '' when it takes none. */
  arg: string;
  /** Its other options, parsed. */
  opts: O;
  cmd: Command;
}

/**
 * Declares the subcommand shape most groups repeat: `<usage> [--json]`, whose handler module is
 * imported only when the subcommand runs. `usage` is the name with its argument: 'show <id>'.
 */
export function jsonCommand<M, O extends object = Record<string, never>>(
  parent: Command,
  run: Run,
  spec: {
    usage: string;
    description: string;
    /** --help of --json, when it means more than machine-readable output. */
    jsonHelp?: string;
    handler: () => Promise<M>;
    call: (handlers: M, ctx: CommandContext, input: JsonInput<O>) => Promise<number>;
  },
): Command {
  const cmd = parent.command(spec.usage).description(spec.description);
  cmd.option('--json', spec.jsonHelp ?? 'machine-readable output');
  return cmd.action(
    run(async (ctx, ...args: unknown[]) => {
      const opts = cmd.opts<O & { json?: boolean }>();
      const arg = typeof args[0] === 'string' ? args[0] : '';
      return spec.call(await spec.handler(), ctx, { json: Boolean(opts.json), arg, opts, cmd });
    }),
  );
}
