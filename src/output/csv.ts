import { fieldValue } from './columns.ts';
import type { CardRecord, DeckMeta, Formatter } from './types.ts';

/** RFC 4180: a header row, CRLF line ends, a field quoted when it holds a comma, quote or line break. */
export const csvFormatter: Formatter = {
  header(meta: DeckMeta): string {
    return `${meta.columns.map(csvField).join(',')}\r\n`;
  },
  card(card: CardRecord, tags: string[], meta: DeckMeta): string {
    const cells = meta.columns.map((c) => (c === 'tags' ? tags.join(' ') : fieldValue(card, c)));
    return `${cells.map(csvField).join(',')}\r\n`;
  },
};

/** Fields with edge whitespace are quoted too, so spreadsheet imports don't trim them. */
export function csvField(value: string): string {
  if (!/[",\r\n]/.test(value) && value.trim() === value) return value;
  return `"${value.replace(/"/g, '""')}"`;
}
