import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { type FlashcardsError, isFlashcardsError } from '../src/core/errors.ts';
import { ankiConnectVersion, type PushProgress, pushToAnkiConnect } from '../src/output/anki-connect.ts';
import { NOTE_TYPE_CSS } from '../src/output/note-type.ts';
import type { CardRecord, DeckMeta } from '../src/output/types.ts';
import { type FakeAnkiConnectOptions, startFakeAnkiConnect } from './support/fake-anki-connect.ts';

const meta: DeckMeta = {
  deck: 'Korean::Top 1000',
  noteType: 'Flashcards Vocabulary',
  fields: ['Term', 'Meaning', 'Example'],
  columns: ['Term', 'Meaning', 'Example', 'tags'],
  tags: ['korean', 'top 1000'],
};

function card(i: number, overrides: Partial<CardRecord> = {}): CardRecord {
  return {
    item: i,
    term: `word${i}`,
    fields: { Term: `word${i}`, Meaning: `meaning ${i}`, Example: `example ${i}` },
    tags: ['verb'],
    key: `word${i}|vocab`,
    ...overrides,
  };
}

function cards(from: number, to: number): CardRecord[] {
  return Array.from({ length: to - from }, (_, i) => card(from + i));
}

const fakes: Array<{ close(): Promise<void> }> = [];
after(() => Promise.all(fakes.map((f) => f.close())));

async function fake(opts?: FakeAnkiConnectOptions) {
  const server = await startFakeAnkiConnect(opts);
  fakes.push(server);
  return server;
}

/** The action names the fake received, in order. */
function actions(server: { requests: Array<{ action: string }> }): string[] {
  return server.requests.map((r) => r.action);
}

async function rejection(promise: Promise<unknown>): Promise<FlashcardsError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(isFlashcardsError(e), `expected a FlashcardsError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the push to fail');
}

/** A URL where nothing listens: a port that was free a moment ago. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

describe('pushToAnkiConnect into an empty profile', () => {
  test('250 cards in batches of 100: creates deck and note type, then 3 canAddNotes/addNotes rounds', async () => {
    const anki = await fake();
    const progress: PushProgress[] = [];

    const result = await pushToAnkiConnect(cards(0, 250), meta, {
      url: anki.url,
      batchSize: 100,
      onBatch: (p) => progress.push(p),
    });

    assert.deepEqual(result, {
      added: 250,
      duplicates: 0,
      repeated: 0,
      failed: 0,
      failures: [],
      batches: 3,
      createdDeck: true,
      createdModel: true,
    });
    assert.deepEqual(actions(anki), [
      'version',
      'deckNames',
      'createDeck',
      'modelNames',
      'createModel',
      ...['canAddNotes', 'addNotes', 'canAddNotes', 'addNotes', 'canAddNotes', 'addNotes'],
    ]);
    const addBatches = anki.requests.filter((r) => r.action === 'addNotes');
    assert.deepEqual(
      addBatches.map((r) => (r.params['notes'] as unknown[]).length),
      [100, 100, 50],
    );
    assert.deepEqual(progress, [
      { batches: 1, sent: 100, added: 100, skipped: 0, repeated: 0, failed: 0 },
      { batches: 2, sent: 200, added: 200, skipped: 0, repeated: 0, failed: 0 },
      { batches: 3, sent: 250, added: 250, skipped: 0, repeated: 0, failed: 0 },
    ]);
    assert.equal(anki.notes.length, 250);
    assert.deepEqual(anki.notes[249], {
      deckName: 'Korean::Top 1000',
      modelName: 'Flashcards Vocabulary',
      fields: { Term: 'word249', Meaning: 'meaning 249', Example: 'example 249' },
      tags: ['verb', 'korean', 'top_1000'],
    });
    assert.ok(anki.decks.has('Korean::Top 1000') && anki.decks.has('Korean'));
    assert.deepEqual(anki.models.get('Flashcards Vocabulary'), ['Term', 'Meaning', 'Example']);
  });

  test('sends notes with deck, note type, HTML fields, joined tags and no-duplicate options', async () => {
    const anki = await fake();
    const tricky = card(0, {
      term: '<b>',
      fields: { Term: ' <b>&"\' ', Meaning: 'line one\nline two\tafter a tab' },
      tags: ['html test', 'korean'],
    });

    await pushToAnkiConnect([tricky], meta, { url: anki.url });

    const sent = anki.requests.find((r) => r.action === 'addNotes')?.params['notes'];
    assert.deepEqual(sent, [
      {
        deckName: 'Korean::Top 1000',
        modelName: 'Flashcards Vocabulary',
        fields: {
          Term: '&lt;b&gt;&amp;&quot;&#39;',
          Meaning: 'line one<br>line two after a tab',
          Example: '',
        },
        tags: ['html_test', 'korean', 'top_1000'],
        options: { allowDuplicate: false, duplicateScope: 'deck' },
      },
    ]);
  });

  test('creates the note type with the fields in order and one card: first field asks, the rest answer', async () => {
    const anki = await fake();

    await pushToAnkiConnect([], meta, { url: anki.url });

    const params = anki.requests.find((r) => r.action === 'createModel')?.params;
    assert.equal(params?.['modelName'], 'Flashcards Vocabulary');
    assert.deepEqual(params?.['inOrderFields'], ['Term', 'Meaning', 'Example']);
    assert.equal(params?.['isCloze'], false);
    // The same styling as the .apkg note type, night mode with Anki's documented selector.
    assert.equal(params?.['css'], NOTE_TYPE_CSS);
    assert.match(String(params?.['css']), /^\.card\.nightMode \{$/m);
    assert.doesNotMatch(String(params?.['css']), /\.nightMode \.card/);
    assert.deepEqual(params?.['cardTemplates'], [
      {
        Name: 'Card 1',
        Front: '<div class="front">{{Term}}</div>',
        Back:
          '{{FrontSide}}\n\n<hr id=answer>\n\n' +
          '{{#Meaning}}<div class="field">{{Meaning}}</div>{{/Meaning}}\n' +
          '{{#Example}}<div class="field">{{Example}}</div>{{/Example}}',
      },
    ]);
  });

  test('reads cards one batch at a time from an async iterable', async () => {
    const anki = await fake();
    let pulled = 0;
    async function* generate(): AsyncGenerator<CardRecord> {
      for (let i = 0; i < 25; i++) {
        pulled++;
        yield card(i);
      }
    }
    const pulledAtBatch: number[] = [];

    const result = await pushToAnkiConnect(generate(), meta, {
      url: anki.url,
      batchSize: 10,
      onBatch: () => pulledAtBatch.push(pulled),
    });

    assert.equal(result.added, 25);
    assert.deepEqual(pulledAtBatch, [10, 20, 25]);
  });
});

describe('pushToAnkiConnect again', () => {
  test('a second push of the same cards adds nothing and creates nothing: all are duplicates', async () => {
    const anki = await fake();
    await pushToAnkiConnect(cards(0, 250), meta, { url: anki.url, batchSize: 100 });
    anki.requests.length = 0;

    const result = await pushToAnkiConnect(cards(0, 250), meta, { url: anki.url, batchSize: 100 });

    assert.deepEqual(result, {
      added: 0,
      duplicates: 250,
      repeated: 0,
      failed: 0,
      failures: [],
      batches: 3,
      createdDeck: false,
      createdModel: false,
    });
    assert.deepEqual(actions(anki), [
      'version',
      'deckNames',
      'modelNames',
      'modelFieldNames',
      'canAddNotes',
      'canAddNotes',
      'canAddNotes',
    ]);
    assert.equal(anki.notes.length, 250);
  });

  test('a push with some new cards adds only those', async () => {
    const anki = await fake();
    await pushToAnkiConnect(cards(0, 100), meta, { url: anki.url });

    const result = await pushToAnkiConnect(cards(60, 160), meta, { url: anki.url, batchSize: 30 });

    assert.equal(result.added, 60);
    assert.equal(result.duplicates, 40);
    assert.equal(anki.notes.length, 160);
    const sent = anki.requests
      .filter((r) => r.action === 'addNotes')
      .slice(1)
      .flatMap((r) => (r.params['notes'] as Array<{ fields: { Term: string } }>).map((n) => n.fields.Term));
    assert.deepEqual(
      sent,
      cards(100, 160).map((c) => c.term),
    );
  });

  test('the same first field in another deck is not a duplicate', async () => {
    const anki = await fake();
    await pushToAnkiConnect(cards(0, 5), meta, { url: anki.url });

    const result = await pushToAnkiConnect(
      cards(0, 5),
      { ...meta, deck: 'Korean::Review' },
      { url: anki.url },
    );

    assert.equal(result.added, 5);
    assert.equal(anki.notes.length, 10);
  });

  test('a card repeating an earlier first field of the push counts as repeated, not as already in Anki, and is not sent', async () => {
    const anki = await fake();
    const twice = card(1, { fields: { Term: 'word0', Meaning: 'other meaning', Example: '' } });

    const result = await pushToAnkiConnect([card(0), twice, card(2)], meta, { url: anki.url });

    assert.deepEqual([result.added, result.duplicates, result.repeated, result.failed], [2, 0, 1, 0]);
    const asked = anki.requests.find((r) => r.action === 'canAddNotes')?.params['notes'];
    assert.equal((asked as unknown[] | undefined)?.length, 2);
  });

  test('every card sent is counted once: added, already in Anki, repeated in this push (across batches) or failed', async () => {
    const anki = await fake({ rejectOnAdd: ['word5'] });
    await pushToAnkiConnect(cards(0, 3), meta, { url: anki.url });
    const repeat = (i: number) => card(90 + i, { fields: { Term: `word${i}`, Meaning: 'again' } });
    const empty = card(4, { fields: { Term: ' ', Meaning: 'no term' } });
    const sent = [card(0), card(3), repeat(3), empty, card(5), card(6), card(1), repeat(6)];
    const progress: PushProgress[] = [];

    const result = await pushToAnkiConnect(sent, meta, {
      url: anki.url,
      batchSize: 3,
      onBatch: (p) => progress.push(p),
    });

    assert.deepEqual(result, {
      added: 2,
      duplicates: 2,
      repeated: 2,
      failed: 2,
      failures: [
        { term: 'word4', key: 'word4|vocab', reason: 'the first field (Term) is empty' },
        { term: 'word5', key: 'word5|vocab', reason: 'Anki did not add the note (addNotes answered null)' },
      ],
      batches: 3,
      createdDeck: false,
      createdModel: false,
    });
    assert.equal(result.added + result.duplicates + result.repeated + result.failed, sent.length);
    assert.deepEqual(progress.at(-1), {
      batches: 3,
      sent: 8,
      added: 2,
      skipped: 2,
      repeated: 2,
      failed: 2,
    });
    assert.deepEqual(
      anki.notes.slice(3).map((n) => n.fields['Term']),
      ['word3', 'word6'],
    );
  });

  test('a field named term is filled from the card’s term, as in the file formats (--fields term,Meaning)', async () => {
    const anki = await fake();
    const chosen: DeckMeta = { ...meta, fields: ['term', 'Meaning'], columns: ['term', 'Meaning'] };

    const result = await pushToAnkiConnect(cards(0, 2), chosen, { url: anki.url });

    assert.deepEqual([result.added, result.failed], [2, 0]);
    assert.deepEqual(
      anki.notes.map((n) => n.fields),
      [
        { term: 'word0', Meaning: 'meaning 0' },
        { term: 'word1', Meaning: 'meaning 1' },
      ],
    );
  });

  test('an existing note type with the same fields is used as it is', async () => {
    const anki = await fake();
    const basic: DeckMeta = {
      deck: 'Default',
      noteType: 'Basic',
      fields: ['Front', 'Back'],
      columns: ['Front', 'Back'],
      tags: [],
    };

    const result = await pushToAnkiConnect(
      [{ item: 0, term: 'x', fields: { Front: 'x', Back: 'y' }, tags: [], key: 'x' }],
      basic,
      { url: anki.url },
    );

    assert.equal(result.createdDeck, false);
    assert.equal(result.createdModel, false);
    assert.equal(result.added, 1);
    assert.ok(!actions(anki).includes('createModel'));
  });
});

describe('pushToAnkiConnect: notes Anki refuses', () => {
  test('null ids from addNotes count as failed, with the reason kept', async () => {
    const anki = await fake({ rejectOnAdd: ['word1'] });

    const result = await pushToAnkiConnect(cards(0, 3), meta, { url: anki.url });

    assert.equal(result.added, 2);
    assert.equal(result.failed, 1);
    assert.deepEqual(result.failures, [
      { term: 'word1', key: 'word1|vocab', reason: 'Anki did not add the note (addNotes answered null)' },
    ]);
  });

  test('when addNotes rolls the batch back (AnkiConnect since 2023) the notes are added one by one', async () => {
    const anki = await fake({ rejectOnAdd: ['word1'], rollbackAddNotes: true });

    const result = await pushToAnkiConnect(cards(0, 3), meta, { url: anki.url });

    assert.equal(result.added, 2);
    assert.equal(result.failed, 1);
    assert.deepEqual(
      result.failures[0]?.reason,
      'The field values you have provided would make an empty question on all cards.',
    );
    assert.deepEqual(actions(anki).slice(-4), ['addNotes', 'addNote', 'addNote', 'addNote']);
    assert.deepEqual(
      anki.notes.map((n) => n.fields['Term']),
      ['word0', 'word2'],
    );
  });

  test('a card with an empty first field fails without being sent', async () => {
    const anki = await fake();

    const result = await pushToAnkiConnect(
      [card(0, { term: '', fields: { Term: '  ', Meaning: 'm' } }), card(1)],
      meta,
      { url: anki.url },
    );

    assert.equal(result.added, 1);
    assert.equal(result.failed, 1);
    assert.equal(result.failures[0]?.reason, 'the first field (Term) is empty');
  });
});

describe('pushToAnkiConnect errors', () => {
  test('Anki not running: one line naming the URL, the start hint, exit code 3', async () => {
    const url = await closedPortUrl();

    const error = await rejection(pushToAnkiConnect(cards(0, 1), meta, { url }));

    assert.equal(error.message, `cannot reach AnkiConnect at ${url} (connection refused)`);
    assert.equal(error.hint, 'start Anki with the AnkiConnect add-on (code 2055492159), or pass --anki-url');
    assert.equal(error.kind, 'network');
    assert.equal(error.exitCode, 3);
  });

  test('no answer within the timeout: cannot reach, exit code 3', async () => {
    const hanging: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
      });

    const error = await rejection(
      pushToAnkiConnect([], meta, { url: 'http://anki.test:8765', fetch: hanging, timeoutMs: 20 }),
    );

    assert.equal(error.message, 'cannot reach AnkiConnect at http://anki.test:8765 (no answer within 20 ms)');
    assert.equal(error.kind, 'timeout');
    assert.equal(error.exitCode, 3);
  });

  test('ankiConnectVersion: the pre-flight check answers the version or throws the same errors', async () => {
    const anki = await fake();
    const url = await closedPortUrl();

    assert.equal(await ankiConnectVersion(anki.url), 6);
    const error = await rejection(ankiConnectVersion(url));

    assert.equal(error.message, `cannot reach AnkiConnect at ${url} (connection refused)`);
    assert.equal(error.exitCode, 3);
  });

  test('AnkiConnect older than API version 6 is refused before anything changes', async () => {
    const anki = await fake({ version: 5 });

    const error = await rejection(pushToAnkiConnect(cards(0, 1), meta, { url: anki.url }));

    assert.equal(error.message, `AnkiConnect at ${anki.url} speaks API version 5, flashcards needs >= 6`);
    assert.equal(error.exitCode, 3);
    assert.deepEqual(actions(anki), ['version']);
  });

  test('an existing note type with different fields: a clear error, exit code 2, nothing added', async () => {
    const anki = await fake();
    anki.models.set('Flashcards Vocabulary', ['Front', 'Back']);

    const error = await rejection(pushToAnkiConnect(cards(0, 1), meta, { url: anki.url }));

    assert.equal(
      error.message,
      'note type "Flashcards Vocabulary" in Anki has the fields Front, Back, the cards have Term, Meaning, Example',
    );
    assert.match(error.hint ?? '', /--note-type/);
    assert.equal(error.exitCode, 2);
    assert.equal(anki.notes.length, 0);
    assert.ok(!actions(anki).includes('createModel'));
  });

  test('an AnkiConnect error string surfaces with the action name, exit code 3', async () => {
    const anki = await fake({ failAction: 'createDeck', failMessage: 'collection is not available' });

    const error = await rejection(pushToAnkiConnect(cards(0, 1), meta, { url: anki.url }));

    assert.equal(error.message, 'AnkiConnect createDeck failed: collection is not available');
    assert.equal(error.exitCode, 3);
  });

  test('an error after some batches says how many notes were added and that a re-run skips them', async () => {
    const anki = await fake();
    let n = 0;
    const failSecondCanAdd: typeof fetch = async (url, init) => {
      const body = JSON.parse(String(init?.body)) as { action: string };
      if (body.action === 'canAddNotes' && ++n === 2) {
        return new Response(JSON.stringify({ result: null, error: 'database is locked' }));
      }
      return fetch(url, init);
    };

    const error = await rejection(
      pushToAnkiConnect(cards(0, 20), meta, { url: anki.url, batchSize: 10, fetch: failSecondCanAdd }),
    );

    assert.equal(
      error.message,
      'AnkiConnect canAddNotes failed: database is locked, after 10 notes were added',
    );
    assert.equal(error.hint, 'run the push again: notes already in the deck are skipped');
  });

  test('Anki going away mid-push: says during which action and how many notes were added', async () => {
    const anki = await fake();
    let n = 0;
    const resetSecondAdd: typeof fetch = async (url, init) => {
      const body = JSON.parse(String(init?.body)) as { action: string };
      if (body.action === 'addNotes' && ++n === 2) {
        throw new TypeError('fetch failed', {
          cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
        });
      }
      return fetch(url, init);
    };

    const error = await rejection(
      pushToAnkiConnect(cards(0, 20), meta, { url: anki.url, batchSize: 10, fetch: resetSecondAdd }),
    );

    assert.equal(
      error.message,
      `AnkiConnect at ${anki.url} stopped answering during addNotes (connection reset), after 10 notes were added`,
    );
    assert.equal(error.exitCode, 3);
  });

  test('a fired signal stops the push between batches: cancelled, exit code 130', async () => {
    const anki = await fake();
    const stop = new AbortController();

    const error = await rejection(
      pushToAnkiConnect(cards(0, 30), meta, {
        url: anki.url,
        batchSize: 10,
        signal: stop.signal,
        onBatch: () => stop.abort(),
      }),
    );

    assert.equal(error.message, 'push to Anki cancelled after 10 notes were added');
    assert.equal(error.kind, 'cancelled');
    assert.equal(error.exitCode, 130);
    assert.equal(anki.notes.length, 10);
  });

  test('an answer that is not JSON: a clear error naming the action, exit code 3', async () => {
    const anki = await fake({ htmlAction: 'version' });

    const error = await rejection(pushToAnkiConnect(cards(0, 1), meta, { url: anki.url }));

    assert.equal(
      error.message,
      `AnkiConnect at ${anki.url} answered version with HTTP 200 and something that is not JSON: ` +
        '"<!doctype html><html><body><h1>It works!</h1></body></html>"',
    );
    assert.equal(error.kind, 'invalid_response');
    assert.equal(error.exitCode, 3);
  });

  test('bad options are usage errors before any request', async () => {
    let requests = 0;
    const counting: typeof fetch = async () => {
      requests++;
      return new Response('{}');
    };

    const batch = await rejection(
      pushToAnkiConnect([], meta, { url: 'http://x', batchSize: 0, fetch: counting }),
    );
    const field = await rejection(
      pushToAnkiConnect([], { ...meta, fields: ['Term', 'Mean:ing'] }, { url: 'http://x', fetch: counting }),
    );

    assert.equal(batch.message, 'AnkiConnect batch size must be an integer >= 1, got 0');
    assert.equal(batch.exitCode, 2);
    assert.match(field.message, /^cannot send the cards to Anki: field name "Mean:ing" contains/);
    assert.equal(requests, 0);
  });
});
