import type { CardRecord, DeckMeta, Formatter } from './types.ts';

/**
 * Anki's text import format (https://docs.ankiweb.net/importing/text-files.html): header lines
 * set separator, deck, note type and the tags column, so the file imports without any dialog
 * choices. With `#html:true` every field is HTML: content is escaped so a "<" in a definition
 * shows as text, and newlines become <br>.
 */
export const ankiFormatter: Formatter = {
  header(meta: DeckMeta): string {
    return [
      '#separator:tab',
      '#html:true',
      `#deck:${headerValue(meta.deck)}`,
      `#notetype:${headerValue(meta.noteType)}`,
      '#columns:Front\tBack\tTags',
      '#tags column:3',
      '',
    ].join('\n');
  },
  card(card: CardRecord, tags: string[]): string {
    return `${ankiField(card.front)}\t${ankiField(card.back)}\t${tags.join(' ')}\n`;
  },
};

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => entities[c] ?? c);
}

/** One field: trimmed, escaped, line breaks as <br>, tabs (the separator) as spaces. */
export function ankiField(text: string): string {
  return escapeHtml(text.trim())
    .replace(/\r\n|\r|\n/g, '<br>')
    .replace(/\t/g, ' ');
}

function headerValue(text: string): string {
  return text.replace(/[\t\r\n]+/g, ' ').trim();
}
