import { FlashcardsError } from '../core/errors.ts';

export const MAX_TERM_LENGTH = 200;

/**
 * A term as the rest of the system sees it: trimmed and in NFC, so a list saved with decomposed
 * Hangul (as macOS sometimes writes it) gives the same cache keys as a composed one.
 */
export function normalizeTerm(raw: string, where: { name: string; line: number; hint: string }): string {
  const term = raw.trim().normalize('NFC');
  // UTF-16 length bounds the code point count from above, so most terms skip the spread.
  const length = term.length > MAX_TERM_LENGTH ? [...term].length : term.length;
  if (length > MAX_TERM_LENGTH) {
    throw new FlashcardsError(
      'input',
      `${where.name}: line ${where.line}: the term is ${length} characters long; the limit is ${MAX_TERM_LENGTH}`,
      { hint: where.hint },
    );
  }
  return term;
}
