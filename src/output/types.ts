export const OUTPUT_FORMATS = ['anki', 'csv', 'jsonl', 'json', 'apkg'] as const;

export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** One note as every writer sees it: the pipeline's card fields by name, tags, and a stable key. */
export interface CardRecord {
  /** Index of the input item the card came from. */
  item: number;
  term: string;
  /** Plain-text field values by field name; writers emit them in `DeckMeta.fields` order. */
  fields: Record<string, string>;
  tags: string[];
  /**
   * Identity of the note across runs (by default the term and the card type): the .apkg note GUID
   * is derived from it, so re-importing an updated deck updates notes instead of adding copies.
   */
  key: string;
}

export interface DeckMeta {
  deck: string;
  noteType: string;
  /** Note fields in order (the first is Anki's sort and duplicate-check field). */
  fields: string[];
  /**
   * Columns of the csv, json and jsonl formats, in order: note fields and the pseudo-columns
   * `term` and `tags`. The Anki text format writes the note fields, then tags if listed here.
   */
  columns: string[];
  /** Added to every card. */
  tags: string[];
}

/** Renders one text format: text before the first card, one piece per card, text after the last. */
export interface Formatter {
  header(meta: DeckMeta): string;
  card(card: CardRecord, tags: string[], meta: DeckMeta, index: number): string;
  footer?(meta: DeckMeta, count: number): string;
}
