import { hash } from 'node:crypto';
import type { CardRecord, DeckMeta } from './types.ts';

/** Anki's base91 alphabet for note GUIDs (the one genanki and Anki itself use). */
const BASE91 = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@[]^_`{|}~';

/**
 * A note GUID from a card's stable key: the first 8 bytes of its SHA-256 in base91, as genanki
 * does. The same key always gives the same GUID, so re-importing an updated deck updates notes.
 */
export function noteGuid(key: string): string {
  // One-shot hash (no Hash object per card), and base91 over two 32-bit halves in plain numbers:
  // this runs for every card of every export.
  const digest = hash('sha256', key, 'buffer');
  let hi = digest.readUInt32BE(0);
  let lo = digest.readUInt32BE(4);
  if (hi === 0 && lo === 0) return BASE91[0]!;
  let out = '';
  while (hi !== 0 || lo !== 0) {
    // (hi * 2^32 + lo) divided by 91, carried through the two halves.
    const highRemainder = hi % 91;
    hi = Math.floor(hi / 91);
    const low = highRemainder * 0x1_0000_0000 + lo;
    lo = Math.floor(low / 91);
    out = BASE91[low % 91]! + out;
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
