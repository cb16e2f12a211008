import type { CardRecord, Formatter } from './types.ts';

/** One JSON object per line with every card field; `tags` includes the deck's tags. */
export const jsonlFormatter: Formatter = {
  header(): string {
    return '';
  },
  card(card: CardRecord, tags: string[]): string {
    const { item, term, front, back, cardType, extra } = card;
    return JSON.stringify({ item, term, front, back, cardType, tags, extra }) + '\n';
  },
};
