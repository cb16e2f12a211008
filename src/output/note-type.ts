/**
 * The note type flashcards creates when Anki does not have it, in an .apkg and through
 * AnkiConnect alike: one card whose front shows the first field and whose back adds every other
 * field below a rule.
 */

/** A card template by Anki's names: question (front) and answer (back) format. */
export interface CardTemplate {
  name: string;
  front: string;
  back: string;
}

/**
 * The note type's styling. Night mode uses the selector Anki documents, `.card.nightMode`: Anki
 * puts the `nightMode` class on the `.card` element itself, so `.nightMode .card` matches nothing.
 */
export const NOTE_TYPE_CSS = `.card {
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 22px;
  line-height: 1.5;
  text-align: center;
  color: black;
  background-color: white;
  padding: 1em;
}
.card.nightMode {
  color: #eee;
  background-color: #2f2f31;
}
.front {
  font-size: 32px;
}
.field {
  margin: 0.6em 0;
}
hr#answer {
  margin: 1em 0;
}
`;

/** The one card of a note type with these fields: the first field asks, the others answer. */
export function cardTemplate(fields: readonly string[]): CardTemplate {
  const [first = '', ...rest] = fields;
  // Each further field in its own div, left out when empty so blank fields leave no gap.
  const answer = rest.map((name) => `{{#${name}}}<div class="field">{{${name}}}</div>{{/${name}}}`);
  return {
    name: 'Card 1',
    front: `<div class="front">{{${first}}}</div>`,
    back: ['{{FrontSide}}', '', '<hr id=answer>', '', ...answer].join('\n'),
  };
}
