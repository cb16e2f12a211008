import { createHash } from 'node:crypto';

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
