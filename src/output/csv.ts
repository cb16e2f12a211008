import type { CardRecord, Formatter } from './types.ts';

/** RFC 4180: CRLF line ends, a field quoted when it holds a comma, quote or line break. */
export const csvFormatter: Formatter = {
  header(): string {
    return 'term,front,back,card_type,tags\r\n';
  },
  card(card: CardRecord, tags: string[]): string {
    return [card.term, card.front, card.back, card.cardType, tags.join(' ')].map(csvField).join(',') + '\r\n';
  },
};

/** Fields with edge whitespace are quoted too, so spreadsheet imports don't trim them. */
export function csvField(value: string): string {
  if (!/[",\r\n]/.test(value) && value.trim() === value) return value;
  return `"${value.replace(/"/g, '""')}"`;
}
