import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deckMeta } from '../src/output/deck-meta.ts';
import { noteTypeHint } from '../src/output/note-type-hint.ts';
import type { DeckMeta } from '../src/output/types.ts';
import { loadPipeline } from '../src/pipeline/registry.ts';

/** The deck a built-in pipeline writes when the user chooses nothing, as `process` makes it. */
function builtinDeck(name: string): DeckMeta {
  const pipeline = loadPipeline(name, process.cwd(), { sourceLanguage: 'Korean', targetLanguage: 'English' });
  return deckMeta(pipeline, { deck: undefined, noteType: undefined, tags: [], fields: undefined });
}

describe('noteTypeHint: what an Anki text deck (.tsv) needs from the collection', () => {
  test('a custom note type: Anki falls back to the current note type unless it has it; suggests .apkg or AnkiConnect', () => {
    assert.equal(
      noteTypeHint('anki', { noteType: 'Flashcards Cloze', fields: ['Text', 'Translation', 'Hint'] }),
      'the deck\'s note type "Flashcards Cloze" (fields Text, Translation, Hint) must already exist in Anki for the .tsv to import into it; ' +
        'if it does not, Anki falls back to the current note type and the fields land in the wrong places; ' +
        'write an .apkg instead (-o deck.apkg), which brings its note type along, or send the cards with --to anki-connect, which creates it',
    );
  });

  test("Anki's stock Basic with its own fields needs nothing (the vocabulary pipeline)", () => {
    assert.equal(noteTypeHint('anki', { noteType: 'Basic', fields: ['Front', 'Back'] }), undefined);
    assert.equal(noteTypeHint('anki', builtinDeck('vocabulary')), undefined);
  });

  test('a stock note type with other fields: some may be left out', () => {
    assert.match(
      noteTypeHint('anki', { noteType: 'Basic', fields: ['Term', 'Meaning', 'Example'] }) ?? '',
      /^the deck's fields \(Term, Meaning, Example\) are not those of Anki's stock "Basic" note type \(Front, Back\): importing the \.tsv may leave some out; write an \.apkg instead/,
    );
  });

  test('the built-in pipelines with a note type of their own get the hint', () => {
    for (const name of ['cloze', 'topics']) {
      const meta = builtinDeck(name);
      const hint = noteTypeHint('anki', meta);
      assert.ok(hint?.includes(`note type "${meta.noteType}"`), `${name}: ${hint}`);
    }
  });

  test('other formats carry no note type for Anki to miss: nothing to say', () => {
    for (const format of ['apkg', 'csv', 'json', 'jsonl'] as const) {
      assert.equal(noteTypeHint(format, { noteType: 'Flashcards Cloze', fields: ['Text'] }), undefined);
    }
  });
});
