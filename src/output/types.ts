export type OutputFormat = 'anki' | 'csv' | 'jsonl';

export const OUTPUT_FORMATS: readonly OutputFormat[] = ['anki', 'csv', 'jsonl'];

export interface CardRecord {
  /** Index of the input item the card came from. */
  item: number;
  term: string;
  front: string;
  back: string;
  cardType: string;
  tags: string[];
  extra?: Record<string, unknown> | undefined;
}

export interface DeckMeta {
  deck: string;
  noteType: string;
  /** Added to every card. */
  tags: string[];
}

/** Renders one format: text before the first card, then one line per card. */
export interface Formatter {
  header(meta: DeckMeta): string;
  card(card: CardRecord, tags: string[]): string;
}
