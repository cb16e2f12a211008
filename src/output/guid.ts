import { createHash } from 'node:crypto';
import type { CardRecord, DeckMeta } from './types.ts';

/** Anki's base91 alphabet for note GUIDs (the one genanki and Anki itself use). */
const BASE91 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_`{|}~';

/**
 * A note GUID from a card's stable key: the first 8 bytes of its SHA-256 in base91, as genanki
 * does. The same key always gives the same GUID, so re-importing an updated deck updates notes.
 */
export function noteGuid(key: string): string {
  let n = createHash('sha256').update(key, 'utf8').digest().readBigUInt64BE(0);
  if (n === 0n) return BASE91[0]!;
  let out = '';
  while (n > 0n) {
    out = BASE91[Number(n % 91n)]! + out;
    n /= 91n;
  }
  return out;
}

/** Joins the parts of a card GUID; Anki uses it as its field separator, so no name or key holds it. */
const GUID_PART_SEPARATOR = '\u001f';

/**
 * A card's note GUID: the note GUID of its note type, deck and key. The same term and card type
 * in two decks (Korean→English and Korean→German) are two notes, and importing one deck does not
 * overwrite the other; the same card exported again into the same deck keeps its GUID.
 */
export function cardGuid(card: CardRecord, meta: DeckMeta): string {
  return noteGuid([meta.noteType, meta.deck, card.key].join(GUID_PART_SEPARATOR));
}
