import { FlashcardsError } from '../core/errors.ts';
import { normalizeTerm } from './term.ts';
import type { InputItem, InputStats } from './types.ts';

/** A line this long cannot hold a valid term; stop buffering rather than grow without bound. */
const MAX_LINE = 64 * 1024;

const hint = 'put one term per line; lines starting with # are comments';

/** One term per line; blank lines and lines starting with `#` are skipped. */
export async function* readTextItems(
  name: string,
  chunks: AsyncIterable<Buffer>,
  stats: InputStats,
): AsyncGenerator<InputItem> {
  // Input is already checked to be UTF-8; the decoder drops a leading BOM.
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let line = 0;

  function* take(text: string): Generator<InputItem> {
    line++;
    const raw = text.trim();
    if (raw === '' || raw.startsWith('#')) return;
    const term = normalizeTerm(raw, { name, line, hint });
    yield { index: stats.items++, line, term, position: undefined, type: undefined, context: {} };
  }

  for await (const chunk of chunks) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n', start)) {
      yield* take(pending.slice(start, nl));
      start = nl + 1;
    }
    pending = pending.slice(start);
    if (pending.length > MAX_LINE) {
      throw new FlashcardsError('input', `${name}: line ${line + 1} is over ${MAX_LINE} characters long`, {
        hint,
      });
    }
  }
  pending += decoder.decode();
  if (pending !== '') yield* take(pending);
  if (stats.items === 0) {
    throw new FlashcardsError('input', `${name} has no terms, only blank lines and comments`, { hint });
  }
}
