import { fieldValue } from './columns.ts';
import { cardGuid } from './guid.ts';
import { cardTags } from './tags.ts';
import type { CardRecord, DeckMeta, Formatter } from './types.ts';

/**
 * Anki's text import format (https://docs.ankiweb.net/importing/text-files.html), for Anki
 * 2.1.55 and later: header lines set separator, deck, note type, the columns and the tags and
 * GUID columns, so the file imports without any dialog choices, and re-importing an updated
 * deck updates its notes (matched by GUID) instead of adding copies. With `#html:true` every
 * field is HTML: content is escaped so a "<" in a definition shows as text, and newlines
 * become <br>. Without a tags column the deck's tags go in a `#tags:` header line, which Anki adds
 * to every note.
 */
export const ankiFormatter: Formatter = {
  header(meta: DeckMeta): string {
    const columns = [...meta.fields];
    const tagsColumn = meta.columns.includes('tags') ? columns.push('Tags') : undefined;
    const guidColumn = columns.push('GUID');
    const deckTags = tagsColumn ? [] : cardTags(NO_CARD, meta);
    return [
      '#separator:tab',
      '#html:true',
      `#deck:${headerValue(meta.deck)}`,
      `#notetype:${headerValue(meta.noteType)}`,
      `#columns:${columns.map(headerValue).join('\t')}`,
      ...(tagsColumn ? [`#tags column:${tagsColumn}`] : []),
      ...(deckTags.length > 0 ? [`#tags:${deckTags.join(' ')}`] : []),
      `#guid column:${guidColumn}`,
      '',
    ].join('\n');
  },
  card(card: CardRecord, tags: string[], meta: DeckMeta): string {
    const cells = meta.fields.map((f) => ankiField(fieldValue(card, f)));
    if (meta.columns.includes('tags')) cells.push(tags.join(' '));
    cells.push(cardGuid(card, meta));
    // Anki's importer skips every line starting with # as a comment: a term like "#1 hit" would
    // vanish. The fields are HTML, so the entity still shows as #.
    return `${cells.join('\t').replace(/^#/, '&#35;')}\n`;
  },
};

/** A card without tags of its own: `cardTags` of it gives the deck's tags alone. */
const NO_CARD: CardRecord = { item: -1, term: '', fields: {}, tags: [], key: '' };

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
