import type { CardRecord, DeckMeta } from './types.ts';

/** Anki splits tags on spaces: whitespace inside a tag becomes `_`; '' means no tag. */
function normalTag(raw: string): string {
  return raw.trim().replace(/\s+/g, '_');
}

// A deck's tags are the same for every card of it: normalised once per deck, not once per card.
const deckTagsOf = new WeakMap<DeckMeta, string[]>();

function deckTags(meta: DeckMeta): string[] {
  let tags = deckTagsOf.get(meta);
  if (tags === undefined) {
    tags = meta.tags.map(normalTag).filter((t) => t !== '');
    deckTagsOf.set(meta, tags);
  }
  return tags;
}

/**
 * A card's tags followed by the deck's, each with whitespace turned into `_` (Anki splits tags on
 * spaces), empty ones dropped, duplicates removed, first occurrence kept.
 */
export function cardTags(card: CardRecord, meta: DeckMeta): string[] {
  const tags: string[] = [];
  for (const raw of card.tags) {
    const tag = normalTag(raw);
    if (tag !== '' && !tags.includes(tag)) tags.push(tag);
  }
  for (const tag of deckTags(meta)) if (!tags.includes(tag)) tags.push(tag);
  return tags;
}
