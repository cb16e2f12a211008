import { extname } from 'node:path';
import { FlashcardsError } from '../core/errors.ts';
import { ankiFormatter } from './anki.ts';
import { writeFileAtomic } from './atomic.ts';
import { csvFormatter } from './csv.ts';
import { jsonFormatter, jsonlFormatter } from './jsonl.ts';
import { writeToStream } from './stream.ts';
import { cardTags } from './tags.ts';
import {
  type CardRecord,
  type DeckMeta,
  type Formatter,
  OUTPUT_FORMATS,
  type OutputFormat,
} from './types.ts';

export type { CardRecord, DeckMeta, OutputFormat } from './types.ts';
export { OUTPUT_FORMATS } from './types.ts';

const formatters: Record<Exclude<OutputFormat, 'apkg'>, Formatter> = {
  anki: ankiFormatter,
  csv: csvFormatter,
  jsonl: jsonlFormatter,
  json: jsonFormatter,
};

/** Cards are written in chunks of about this many characters: few syscalls, bounded memory. */
const CHUNK_CHARS = 64 * 1024;

export interface WriteResult {
  cards: number;
  bytes: number;
  /** Absolute path of the written file, or 'stdout'. */
  path: string;
}

/**
 * Writes cards, in the order given, to `file` (atomically: temp file, fsync, rename) or to stdout
 * when `file` is '-'. Cards are pulled one at a time, so an async iterable over stored results
 * streams straight to disk.
 */
export async function writeOutput(
  file: string,
  format: OutputFormat,
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  opts: { stdout?: NodeJS.WritableStream } = {},
): Promise<WriteResult> {
  if (format === 'apkg') {
    if (file === '-')
      throw new FlashcardsError('usage', 'an .apkg package cannot be written to stdout', {
        hint: 'give a file with -o deck.apkg',
      });
    const { writeApkg } = await import('./apkg.ts');
    return writeApkg(file, cards, meta);
  }
  const count = { cards: 0 };
  const chunks = render(formatters[format], cards, meta, count);
  if (file === '-') {
    const bytes = await writeToStream(opts.stdout ?? process.stdout, chunks);
    return { cards: count.cards, bytes, path: 'stdout' };
  }
  const { bytes, path } = await writeFileAtomic(file, chunks);
  return { cards: count.cards, bytes, path };
}

export function parseOutputFormat(text: string): OutputFormat {
  const format = OUTPUT_FORMATS.find((f) => f === text.trim().toLowerCase());
  if (format) return format;
  throw new FlashcardsError('usage', `unknown --format "${text}"; expected ${OUTPUT_FORMATS.join(', ')}`, {
    hint: "anki writes Anki's text import file, apkg an Anki package, csv a spreadsheet, json one array, jsonl one object per line",
  });
}

/** The format an output path implies by its extension, if any (.csv, .json, .jsonl/.ndjson, .apkg, .txt/.tsv for Anki). */
export function outputFormatFromPath(file: string): OutputFormat | undefined {
  switch (extname(file).toLowerCase()) {
    case '.csv':
      return 'csv';
    case '.jsonl':
    case '.ndjson':
      return 'jsonl';
    case '.json':
      return 'json';
    case '.apkg':
      return 'apkg';
    case '.txt':
    case '.tsv':
      return 'anki';
    default:
      return undefined;
  }
}

async function* render(
  formatter: Formatter,
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  count: { cards: number },
): AsyncGenerator<string> {
  let buffer = formatter.header(meta);
  for await (const card of cards) {
    buffer += formatter.card(card, cardTags(card, meta), meta, count.cards);
    count.cards++;
    if (buffer.length >= CHUNK_CHARS) {
      yield buffer;
      buffer = '';
    }
  }
  buffer += formatter.footer?.(meta, count.cards) ?? '';
  if (buffer !== '') yield buffer;
}
