import { chooseColumns } from './columns.ts';
import type { DeckMeta } from './types.ts';

export interface DeckChoice {
  /** Undefined when the user chose none: the pipeline's own default applies. */
  deck: string | undefined;
  noteType: string | undefined;
  tags: string[];
  fields: string[] | undefined;
}

/** Deck, note type, fields and columns of an output, from the user's choices and the pipeline's defaults. */
export function deckMeta(
  pipeline: {
    fields: readonly string[];
    deck: string | undefined;
    noteType: string | undefined;
    name: string;
  },
  choice: DeckChoice,
): DeckMeta {
  return {
    deck: choice.deck ?? pipeline.deck ?? 'Flashcards',
    noteType: choice.noteType ?? pipeline.noteType ?? `Flashcards ${pipeline.name}`,
    tags: choice.tags,
    ...chooseColumns(pipeline.fields, choice.fields),
  };
}
