import { FlashcardsError } from '../core/errors.ts';
import { didYouMeanSuffix } from '../core/suggest.ts';
import type { CardRecord } from './types.ts';

/** Columns that are not card fields but can be chosen with --fields like them. */
export const PSEUDO_COLUMNS = ['term', 'tags'] as const;

/**
 * Note fields and output columns from the pipeline's card fields and an optional `--fields`
 * choice (case-insensitive, in the order given). Without a choice: every field, with `term`
 * first and `tags` last in tabular formats.
 */
export function chooseColumns(
  cardFields: readonly string[],
  chosen: readonly string[] | undefined,
): { fields: string[]; columns: string[] } {
  if (!chosen) return { fields: [...cardFields], columns: ['term', ...cardFields, 'tags'] };
  const known = [...cardFields, ...PSEUDO_COLUMNS];
  const columns = chosen.map((name) => {
    const match = known.find((k) => k.toLowerCase() === name.trim().toLowerCase());
    if (match) return match;
    throw new FlashcardsError(
      'usage',
      `--fields: "${name}" is not a field of this pipeline${didYouMeanSuffix(name, known)}`,
      { hint: `choose from ${known.join(', ')}` },
    );
  });
  const unique = [...new Set(columns)];
  const fields = unique.filter((c) => c !== 'tags');
  if (fields.length === 0)
    throw new FlashcardsError('usage', '--fields must name at least one field besides tags', {
      hint: `choose from ${known.join(', ')}`,
    });
  return { fields, columns: unique };
}

/** A field's text: a card field, or the term when `term` is chosen as a field. */
export function fieldValue(card: CardRecord, name: string): string {
  return card.fields[name] ?? (name === 'term' ? card.term : '');
}
