import { FlashcardsError } from '../core/errors.ts';
import { openBytes } from './bytes.ts';
import { readDelimitedItems } from './delimited.ts';
import { detectFormat } from './detect.ts';
import { readTextItems } from './text.ts';
import type { InputFormat, InputSource, InputStats } from './types.ts';

export { formatFromExtension, sniffFormat } from './detect.ts';
export { MAX_TERM_LENGTH } from './term.ts';
export type { InputFormat, InputItem, InputSource, InputStats } from './types.ts';
export { INPUT_FORMATS } from './types.ts';

export interface OpenInputOptions {
  /** Read when `path` is '-'; defaults to process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** Overrides detection by extension and sniffing. */
  format?: InputFormat;
  /** Names the input in messages instead of `path` (e.g. 'stdin' for a spooled copy of it). */
  name?: string;
}

/**
 * Opens a word list: CSV/TSV with a header row, or plain text with one term per line; '-' is stdin.
 * Problems visible in the first 64 KiB (missing, directory, unreadable, empty, binary) are thrown
 * here; the rest by the `items` iterator, with the line number. Iterate `items` to the end (or
 * break out of the loop) so the file is closed.
 */
export async function openInput(path: string, opts: OpenInputOptions = {}): Promise<InputSource> {
  const bytes = await openBytes(path, opts.stdin, opts.name);
  // Upfront checks only need the head; the decoder drops a leading BOM.
  const headText = new TextDecoder('utf-8').decode(bytes.head);
  if (bytes.complete && headText.trim() === '') {
    await bytes.close();
    throw new FlashcardsError('input', `${bytes.name} is empty`, {
      hint: 'expected one term per line, or a CSV/TSV with a header row such as term,position,type',
    });
  }
  const format = opts.format ?? detectFormat(path, headText);
  const stats: InputStats = { items: 0, skipped: 0 };
  const generator =
    format === 'text'
      ? readTextItems(bytes.name, bytes.chunks(), stats)
      : readDelimitedItems(bytes.name, bytes.chunks(), format === 'csv' ? ',' : '\t', stats);

  return {
    name: bytes.name,
    format,
    items: readOnce(bytes.name, generator),
    digest: () => bytes.digest(),
    stats: () => ({ ...stats }),
  };
}

function readOnce<T>(name: string, generator: AsyncGenerator<T>): AsyncIterable<T> {
  let used = false;
  return {
    [Symbol.asyncIterator]() {
      if (used) throw new FlashcardsError('internal', `the items of ${name} can only be read once`);
      used = true;
      return generator;
    },
  };
}
