import { fieldValue } from './columns.ts';
import type { CardRecord, DeckMeta, Formatter } from './types.ts';

/** A card as JSON: `item`, the chosen columns (`term`, `fields` by name, `tags` with the deck's), `key`. */
export function cardObject(card: CardRecord, tags: string[], meta: DeckMeta): Record<string, unknown> {
  const fields: Record<string, string> = {};
  for (const column of meta.fields) fields[column] = fieldValue(card, column);
  return {
    item: card.item,
    ...(meta.columns.includes('term') ? { term: card.term } : {}),
    fields,
    ...(meta.columns.includes('tags') ? { tags } : {}),
    key: card.key,
  };
}

/** One JSON object per line. */
export const jsonlFormatter: Formatter = {
  header(): string {
    return '';
  },
  card(card: CardRecord, tags: string[], meta: DeckMeta): string {
    return `${JSON.stringify(cardObject(card, tags, meta))}\n`;
  },
};

/** One JSON array, streamed: an element per card. */
export const jsonFormatter: Formatter = {
  header(): string {
    return '[';
  },
  card(card: CardRecord, tags: string[], meta: DeckMeta, index: number): string {
    return `${index === 0 ? '\n  ' : ',\n  '}${JSON.stringify(cardObject(card, tags, meta))}`;
  },
  footer(_meta: DeckMeta, count: number): string {
    return count === 0 ? ']\n' : '\n]\n';
  },
};
