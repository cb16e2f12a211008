import type { CardRecord, DeckMeta } from './types.ts';

/**
 * A card's tags followed by the deck's, each with whitespace turned into `_` (Anki splits tags on
 * spaces), empty ones dropped, duplicates removed, first occurrence kept.
 */
export function cardTags(card: CardRecord, meta: DeckMeta): string[] {
  const tags = new Set<string>();
  for (const raw of [...card.tags, ...meta.tags]) {
    const tag = raw.trim().replace(/\s+/g, '_');
    if (tag !== '') tags.add(tag);
  }
  return [...tags];
}
