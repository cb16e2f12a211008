import { basename, extname, resolve } from 'node:path';
import type { BatchRecord } from '../../batch/store.ts';
import type { Settings } from '../../config/index.ts';
import type { ValueSource } from '../../config/sources.ts';
import { usageError } from '../../core/errors.ts';
import { checkOutputPath } from '../../output/atomic.ts';
import { type OutputFormat, outputFormatFromPath, parseOutputFormat } from '../../output/index.ts';
import type { CommandContext } from '../context.ts';
import type { ProcessOptions } from './options.ts';

/**
 * Where a run's deck goes and in which format, settled and checked the same way for `process`
 * and its dry run, so a dry run that passes does not fail later over -o.
 */

const extensions: Record<OutputFormat, string> = {
  anki: '.deck.tsv',
  csv: '.cards.csv',
  jsonl: '.cards.jsonl',
  json: '.cards.json',
  apkg: '.apkg',
};

/** words.csv -> words.deck.tsv (or .cards.csv, .apkg, ...); stdin -> deck.tsv / cards.csv / ... */
function defaultOutput(input: string, format: OutputFormat, cwd: string): string {
  const name =
    input === '-' ? extensions[format].slice(1) : `${basename(input, extname(input))}${extensions[format]}`;
  return resolve(cwd, name);
}

/** What the run is told about its deck: -o (or --stdout), the input, --to, and a named batch. */
export type DeckWish = Pick<ProcessOptions, 'input' | 'output' | 'to'>;

/** -o as typed; else, with `--batch <id>` and no input, the file that batch's last run wrote. */
function outputArg(o: DeckWish, named: BatchRecord | undefined): string | undefined {
  if (o.output !== undefined || o.input !== undefined || o.to === 'anki-connect') return o.output;
  return named?.outputPath ?? undefined;
}

/**
 * The deck's format. `-o deck.apkg` means apkg whatever the config file or environment say: the
 * path is the more specific wish. Only --format on the same command line overrides it. A named
 * batch's own file is written again in the format it was written in.
 */
export function deckFormat(
  o: DeckWish,
  settings: Settings,
  sources: Record<string, ValueSource>,
  named: BatchRecord | undefined,
): OutputFormat {
  if (sources['format']?.kind === 'flag') return parseOutputFormat(settings.format);
  const target = outputArg(o, named);
  const fromPath = target && target !== '-' ? outputFormatFromPath(target) : undefined;
  if (fromPath) return fromPath;
  if (named && target !== undefined && target === named.outputPath) return parseOutputFormat(named.format);
  return parseOutputFormat(settings.format);
}

/**
 * Where the deck goes ('-' for stdout, null for AnkiConnect only), checked as the run will write
 * it: `process` and its dry run call this, so a dry run that passes does not fail later over -o.
 */
export async function deckOutput(
  ctx: CommandContext,
  o: DeckWish,
  format: OutputFormat,
  named: BatchRecord | undefined,
): Promise<string | null> {
  const target = outputArg(o, named);
  let output: string | null;
  if (target === '-') output = '-';
  else if (target !== undefined) output = resolve(ctx.cwd, target);
  else if (o.to === 'anki-connect') output = null;
  else if (o.input !== undefined) output = defaultOutput(o.input, format, ctx.cwd);
  else {
    throw usageError(
      `batch ${named?.id ?? ''} has no deck file on record (its last run wrote to stdout or Anki only)`,
      'give the deck file with -o, or use --stdout',
    );
  }
  if (output === '-' && format === 'apkg')
    throw usageError('an .apkg package cannot be written to stdout', 'give a file with -o deck.apkg');
  // A typo in -o must not surface after the whole run.
  if (output !== null && output !== '-') await checkOutputPath(output, o.output ?? output);
  return output;
}
