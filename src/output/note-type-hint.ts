import type { DeckMeta, OutputFormat } from './types.ts';

/**
 * Anki's stock note types (English names) and their fields. A text import (.tsv) cannot create a
 * note type: it needs one of these, or one the user made, with matching fields.
 */
const STOCK_NOTE_TYPES: Readonly<Record<string, readonly string[]>> = {
  Basic: ['Front', 'Back'],
  'Basic (and reversed card)': ['Front', 'Back'],
  'Basic (optional reversed card)': ['Front', 'Back', 'Add Reverse'],
  'Basic (type in the answer)': ['Front', 'Back'],
  Cloze: ['Text', 'Back Extra'],
};

const REMEDY =
  'write an .apkg instead (-o deck.apkg), which brings its note type along, or send the cards with --to anki-connect, which creates it';

/**
 * What to tell someone writing an Anki text deck (.tsv/.txt, format `anki`) whose note type Anki
 * may not have: the file names the note type (`#notetype:`), but Anki's importer cannot create
 * one, and when the collection has no note type of that name it falls back to the current one, so
 * the fields land in the wrong places or not at all. Undefined when there is nothing to say: another
 * format, or a stock note type whose fields the deck uses as they are (the vocabulary pipeline's Basic).
 *
 * For the process summary: print it on stderr as `warning: <text>`.
 */
export function noteTypeHint(
  format: OutputFormat,
  meta: Pick<DeckMeta, 'noteType' | 'fields'>,
): string | undefined {
  if (format !== 'anki') return undefined;
  const fields = meta.fields.join(', ');
  const stock = STOCK_NOTE_TYPES[meta.noteType];
  if (stock) {
    if (stock.length === meta.fields.length && stock.every((f, i) => f === meta.fields[i])) return undefined;
    return (
      `the deck's fields (${fields}) are not those of Anki's stock "${meta.noteType}" note type (${stock.join(', ')}): ` +
      `importing the .tsv may leave some out; ${REMEDY}`
    );
  }
  return (
    `the deck's note type "${meta.noteType}" (fields ${fields}) must already exist in Anki for the .tsv to import into it; ` +
    `if it does not, Anki falls back to the current note type and the fields land in the wrong places; ${REMEDY}`
  );
}
