import { type Command, Option } from 'commander';
import {
  defaultHelp,
  SETTING_ENTRIES,
  SETTINGS,
  type SettingPath,
  type SettingSpec,
} from '../config/settings-table.ts';
import type { CommandContext } from './context.ts';
import { parseCount } from './count.ts';

/**
 * What the command groups' registration modules (`*.cli.ts`) share. They load at start-up, so
 * they import commander and the plain settings table only; each handler is imported when its
 * command runs.
 */

/** Turns a handler into a commander action; cli.ts builds the context and records the exit code. */
export type Run = <A extends unknown[]>(
  handler: (ctx: CommandContext, ...args: A) => Promise<number>,
) => (...args: A) => Promise<void>;

/** The config path of each option made from the settings table. */
const pathOfOption = new WeakMap<Option, SettingPath>();

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
  const option = new Option(
    spec.flag.flags,
    `${override.help ?? spec.flag.help}${shown === undefined ? '' : ` (default: ${shown})`}`,
  );
  if (spec.flag.choices) option.choices(spec.flag.choices);
  pathOfOption.set(option, path);
  return option;
}

/**
 * Adds setting flags to a command: all of them (`process`), the provider's (`--provider`,
 * `--base-url`, `--model`), or the ones named. A new setting with a flag joins `process` here.
 */
export function addSettingOptions(
  cmd: Command,
  which: 'all' | 'provider' | readonly SettingPath[],
  heading?: string,
): Command {
  const paths = SETTING_ENTRIES.filter(([path, spec]) =>
    which === 'all' ? spec.flag : which === 'provider' ? spec.flag?.provider : which.includes(path),
  ).map(([path]) => path);
  for (const path of paths) {
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
    const path = pathOfOption.get(option);
    const name = option.attributeName();
    if (path && cmd.getOptionValueSource(name) === 'cli') flags[path] = cmd.getOptionValue(name);
  }
  return flags;
}

/** `--limit <n>` and the like: a whole number >= 1, refused with the text the user typed. */
export function countOption(flags: string, help: string, fallback: number): Option {
  const name = flags.split(' ')[0] ?? flags;
  return new Option(flags, help).default(fallback).argParser((text: string) => parseCount(name, text));
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
