/**
 * Streaming UTF-8 check (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), which also
 * rejects NUL: a word list never contains one, a binary file nearly always does. State carries
 * across chunks, so a character split between two reads is fine.
 */
export class Utf8Validator {
  #need = 0;
  #lo = 0x80;
  #hi = 0xbf;

  /** Returns the index of the first bad byte in `chunk`, or -1. */
  push(chunk: Uint8Array): number {
    let need = this.#need;
    let lo = this.#lo;
    let hi = this.#hi;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (need > 0) {
        if (b < lo || b > hi) return i;
        need--;
        lo = 0x80;
        hi = 0xbf;
      } else if (b < 0x80) {
        if (b === 0) return i;
      } else if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
      } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        if (b === 0xe0) lo = 0xa0; // overlong
        if (b === 0xed) hi = 0x9f; // surrogates
      } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        if (b === 0xf0) lo = 0x90; // overlong
        if (b === 0xf4) hi = 0x8f; // above U+10FFFF
      } else {
        return i;
      }
    }
    this.#need = need;
    this.#lo = lo;
    this.#hi = hi;
    return -1;
  }

  /** True when the input ended in the middle of a character. */
  get incomplete(): boolean {
    return this.#need > 0;
  }
}

/** Number of '\n' bytes in `chunk` before `end`. */
export function countNewlines(chunk: Uint8Array, end = chunk.length): number {
  let n = 0;
  for (let i = chunk.indexOf(10); i !== -1 && i < end; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}
