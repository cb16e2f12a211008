import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
// An independent reader: zip.js unpacks the package, sql.js (SQLite compiled to wasm) opens it.
import { readAnkiPackage } from 'anki-reader';
import { isFlashcardsError } from '../src/core/errors.ts';
import { noteGuid, writeApkg } from '../src/output/apkg.ts';
import { cardGuid } from '../src/output/guid.ts';
import type { CardRecord, DeckMeta } from '../src/output/types.ts';
import { tempDir } from './support/cli.ts';

const meta: DeckMeta = {
  deck: 'Korean::Top 1000',
  noteType: 'Flashcards vocabulary',
  fields: ['Front', 'Back', 'Example'],
  columns: ['term', 'Front', 'Back', 'Example', 'tags'],
  tags: ['korean', 'top 1000'],
};

const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const clock = (ms: number) => () => ms;

function card(i: number): CardRecord {
  return {
    item: i,
    term: `단어${i}`,
    // Every third card has no Example: a missing field is stored empty.
    fields:
      i % 3 === 0
        ? { Back: `word ${i}`, Front: `단어${i}` }
        : { Front: `단어${i}`, Back: `word ${i}`, Example: `예문 ${i}` },
    tags: i % 2 === 0 ? ['noun'] : ['verb', 'korean'],
    key: `단어${i}|recognition`,
  };
}

function cards(n: number): CardRecord[] {
  return Array.from({ length: n }, (_, i) => card(i));
}

type SqlValue = string | number | Uint8Array | null;
/** The part of sql.js's Database the tests use (anki-reader hands it out untyped). */
interface SqlDb {
  exec(sql: string): { columns: string[]; values: SqlValue[][] }[];
}

interface ReadBack {
  version: number;
  media: string[];
  decks: Record<string, { name: string; cards: { fields: Record<string, string>; model: string }[] }>;
  models: {
    id: string;
    name: string;
    fields: string[];
    qfmt: string;
    afmt: string;
    css: string;
    sortf: number;
  }[];
  notes: Record<string, SqlValue>[];
  cards: Record<string, SqlValue>[];
  db: SqlDb;
}

function rows(db: SqlDb, sql: string): Record<string, SqlValue>[] {
  const [result] = db.exec(sql);
  if (!result) return [];
  return result.values.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i] ?? null])));
}

async function readBack(file: string): Promise<ReadBack> {
  const { collection, media } = await readAnkiPackage(new Blob([readFileSync(file)]));
  const db = collection.getRawCollection() as SqlDb;
  const decks: ReadBack['decks'] = {};
  for (const [id, deck] of Object.entries(collection.getDecks())) {
    decks[id] = {
      name: deck.getName(),
      cards: Object.values(deck.getCards()).map((c) => ({
        fields: c.getFields(),
        model: c.getModel().getName(),
      })),
    };
  }
  const models = Object.entries(collection.getModels()).map(([id, model]) => {
    const [template] = model.getTemplates();
    return {
      id,
      name: model.getName(),
      fields: model.getFields().map((f) => f.name),
      qfmt: template?.qfmt ?? '',
      afmt: template?.afmt ?? '',
      css: (model.getRawModel() as { css: string }).css,
      sortf: (model.getRawModel() as { sortf: number }).sortf,
    };
  });
  return {
    version: collection.getVersion(),
    media: Object.keys(media),
    decks,
    models,
    notes: rows(db, 'SELECT * FROM notes ORDER BY id'),
    cards: rows(db, 'SELECT * FROM cards ORDER BY id'),
    db,
  };
}

async function written(
  list: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  now = T0,
  m = meta,
  file = join(tempDir('fc-apkg-'), 'deck.apkg'),
) {
  const result = await writeApkg(file, list, m, { now: clock(now) });
  return { file, result, pkg: await readBack(file) };
}

/** Runs `body` with os.tmpdir() pointing at `dir`, to see what the writer leaves there. */
async function withTmpdir<T>(dir: string, body: () => Promise<T>): Promise<T> {
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = dir;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
  }
}

describe('apkg package', () => {
  test('20 cards become 20 notes in the deck with their fields in note-type order and their tags', async () => {
    const { file, result, pkg } = await written(cards(20));
    assert.deepEqual(result, { cards: 20, bytes: statSync(file).size, path: file });
    assert.equal(pkg.notes.length, 20);
    assert.equal(pkg.cards.length, 20);
    const deck = Object.values(pkg.decks).find((d) => d.name === 'Korean::Top 1000');
    assert.ok(deck);
    assert.deepEqual(
      deck.cards.map((c) => c.fields),
      cards(20).map((c) => ({
        Front: c.fields['Front'],
        Back: c.fields['Back'],
        Example: c.fields['Example'] ?? '',
      })),
    );
    assert.ok(deck.cards.every((c) => c.model === 'Flashcards vocabulary'));
    assert.deepEqual(pkg.notes[0]?.['flds'], '단어0\x1fword 0\x1f');
    assert.deepEqual(pkg.notes[1]?.['flds'], '단어1\x1fword 1\x1f예문 1');
    // Card tags, then the deck's, spaces turned into _, duplicates dropped, space-padded as Anki stores them.
    assert.equal(pkg.notes[0]?.['tags'], ' noun korean top_1000 ');
    assert.equal(pkg.notes[1]?.['tags'], ' verb korean top_1000 ');
    assert.deepEqual(
      pkg.notes.map((n) => n['sfld']),
      cards(20).map((c) => c.fields['Front']),
    );
  });

  test('names the deck and the note type with exactly the given fields, the first one on the front', async () => {
    const { pkg } = await written(cards(2));
    assert.equal(pkg.version, 11);
    assert.deepEqual(pkg.media, []);
    assert.deepEqual(
      Object.values(pkg.decks)
        .map((d) => d.name)
        .sort(),
      ['Default', 'Korean::Top 1000'],
    );
    assert.equal(pkg.decks['1']?.name, 'Default');
    assert.equal(pkg.models.length, 1);
    const [model] = pkg.models;
    assert.equal(model?.name, 'Flashcards vocabulary');
    assert.deepEqual(model?.fields, ['Front', 'Back', 'Example']);
    assert.equal(model?.sortf, 0);
    assert.equal(model?.qfmt, '<div class="front">{{Front}}</div>');
    assert.equal(
      model?.afmt,
      '{{FrontSide}}\n\n<hr id=answer>\n\n' +
        '{{#Back}}<div class="field">{{Back}}</div>{{/Back}}\n' +
        '{{#Example}}<div class="field">{{Example}}</div>{{/Example}}',
    );
    // Night mode as Anki documents it: Anki puts the nightMode class on the .card element itself.
    assert.match(model?.css ?? '', /^\.card\.nightMode \{$/m);
    assert.doesNotMatch(model?.css ?? '', /\.nightMode \.card/);
    const [deckId] = Object.keys(pkg.decks).filter((id) => id !== '1');
    for (const [i, c] of pkg.cards.entries()) {
      assert.equal(String(c['did']), deckId);
      assert.equal(c['ord'], 0);
      assert.equal(c['type'], 0);
      assert.equal(c['queue'], 0);
      assert.equal(c['due'], i + 1);
      assert.equal(c['nid'], pkg.notes[i]?.['id']);
    }
    for (const n of pkg.notes) assert.equal(String(n['mid']), model?.id);
  });

  test('the collection row carries the JSON Anki reads, and the usual tables and indexes exist', async () => {
    const { pkg } = await written(cards(3));
    const [col] = rows(pkg.db, 'SELECT * FROM col');
    assert.equal(col?.['ver'], 11);
    assert.equal(col?.['mod'], T0);
    assert.deepEqual(JSON.parse(String(col?.['tags'])), { noun: -1, korean: -1, top_1000: -1, verb: -1 });
    assert.equal(JSON.parse(String(col?.['dconf']))['1'].name, 'Default');
    assert.equal(JSON.parse(String(col?.['conf'])).nextPos, 4);
    const names = rows(
      pkg.db,
      "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name",
    );
    assert.deepEqual(
      names.map((r) => r['name']),
      [
        'cards',
        'col',
        'graves',
        'ix_cards_nid',
        'ix_cards_sched',
        'ix_cards_usn',
        'ix_notes_csum',
        'ix_notes_usn',
        'ix_revlog_cid',
        'ix_revlog_usn',
        'notes',
        'revlog',
      ],
    );
    assert.deepEqual(rows(pkg.db, 'PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
    const mod = Math.floor(T0 / 1000);
    assert.deepEqual(
      pkg.notes.map((n) => [n['id'], n['mod'], n['usn']]),
      [
        [T0, mod, -1],
        [T0 + 1, mod, -1],
        [T0 + 2, mod, -1],
      ],
    );
  });

  test('writing the same cards twice, later, gives the same GUIDs, deck id and note type id', async () => {
    const first = await written(cards(20), T0);
    const second = await written(cards(20), T0 + 86_400_000);
    assert.deepEqual(
      second.pkg.notes.map((n) => n['guid']),
      first.pkg.notes.map((n) => n['guid']),
    );
    assert.deepEqual(Object.keys(second.pkg.decks), Object.keys(first.pkg.decks));
    assert.deepEqual(
      second.pkg.models.map((m) => m.id),
      first.pkg.models.map((m) => m.id),
    );
    assert.deepEqual(
      first.pkg.notes.map((n) => n['guid']),
      cards(20).map((c) => cardGuid(c, meta)),
    );
    // Only the ids taken from the clock move.
    assert.equal(second.pkg.notes[0]?.['id'], T0 + 86_400_000);
  });

  test('the same cards and clock give a byte-identical package', async () => {
    const a = await written(cards(20));
    const b = await written(cards(20));
    assert.deepEqual(readFileSync(a.file), readFileSync(b.file));
  });

  test('note GUIDs are genanki’s guid_for of the key, and different keys give different GUIDs', () => {
    // Values from genanki's util.guid_for (base91 of the first 8 bytes of SHA-256).
    assert.equal(noteGuid('가다|recognition'), 'w~8L,mK#2I');
    assert.equal(noteGuid('hello'), 'hZ%+.BW-%^');
    const keys = Array.from({ length: 5000 }, (_, i) => `term ${i}|recognition`);
    assert.equal(new Set(keys.map(noteGuid)).size, 5000);
    assert.notEqual(noteGuid('가다|recognition'), noteGuid('가다|production'));
  });

  test('the same card in two decks gets two note GUIDs, so importing one deck does not overwrite the other', async () => {
    const english = await written(cards(3));
    const german = await written(cards(3), T0, { ...meta, deck: 'Korean::German' });
    const guids = (pkg: ReadBack) => pkg.notes.map((n) => n['guid']);
    assert.equal(new Set([...guids(english.pkg), ...guids(german.pkg)]).size, 6);
    assert.deepEqual(
      guids(german.pkg),
      cards(3).map((c) => cardGuid(c, { ...meta, deck: 'Korean::German' })),
    );
  });

  test('a different deck name or field list gives a different deck or note type id', async () => {
    const base = await written(cards(1));
    const renamed = await written(cards(1), T0, { ...meta, deck: 'Korean::Top 2000' });
    const refielded = await written(cards(1), T0, { ...meta, fields: ['Front', 'Back'] });
    assert.notDeepEqual(Object.keys(renamed.pkg.decks), Object.keys(base.pkg.decks));
    assert.deepEqual(
      renamed.pkg.models.map((m) => m.id),
      base.pkg.models.map((m) => m.id),
    );
    assert.notDeepEqual(
      refielded.pkg.models.map((m) => m.id),
      base.pkg.models.map((m) => m.id),
    );
    for (const pkg of [base.pkg, renamed.pkg, refielded.pkg]) {
      for (const id of [...Object.keys(pkg.decks), ...pkg.models.map((m) => m.id)].map(Number)) {
        assert.ok(Number.isSafeInteger(id) && id >= 1, `id ${id}`);
      }
    }
  });

  test('HTML special characters are stored escaped and line breaks as <br>', async () => {
    const tricky: CardRecord = {
      item: 0,
      term: '<b>',
      fields: { Front: '<b>&"\'', Back: 'line one\nline two\r\nline three', Example: '  a < b  ' },
      tags: ['html test'],
      key: '<b>|basic',
    };
    const { pkg } = await written([tricky]);
    const [note] = pkg.notes;
    assert.equal(
      note?.['flds'],
      '&lt;b&gt;&amp;&quot;&#39;\x1fline one<br>line two<br>line three\x1fa &lt; b',
    );
    assert.equal(note?.['tags'], ' html_test korean top_1000 ');
    // Pinned: a change of the GUID recipe would turn every re-import into copies.
    assert.equal(note?.['guid'], 'frP9%/7rs0');
    assert.equal(note?.['guid'], noteGuid('Flashcards vocabulary\u001fKorean::Top 1000\u001f<b>|basic'));
    // The sort field and checksum are of the text as Anki sees it: tags stripped, entities decoded.
    assert.equal(note?.['sfld'], '<b>&"\'');
    assert.equal(note?.['csum'], 2622255434);
  });

  test('an empty card list still gives a valid package with the deck and note type', async () => {
    const { result, pkg } = await written([]);
    assert.equal(result.cards, 0);
    assert.equal(pkg.notes.length, 0);
    assert.equal(pkg.cards.length, 0);
    assert.deepEqual(
      Object.values(pkg.decks)
        .map((d) => d.name)
        .sort(),
      ['Default', 'Korean::Top 1000'],
    );
    assert.deepEqual(pkg.models[0]?.fields, ['Front', 'Back', 'Example']);
    assert.deepEqual(rows(pkg.db, 'PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
  });

  test('a deck named Default is Anki’s own deck 1, not a second deck of that name', async () => {
    const { pkg } = await written(cards(2), T0, { ...meta, deck: 'Default' });
    assert.deepEqual(Object.keys(pkg.decks), ['1']);
    assert.deepEqual(
      pkg.cards.map((c) => c['did']),
      [1, 1],
    );
  });

  test('cards stream in from an async iterable, and the temp collection is removed afterwards', async () => {
    const file = join(tempDir('fc-apkg-'), 'deck.apkg');
    const tmp = tempDir('fc-apkg-tmp-');
    await withTmpdir(tmp, async () => {
      async function* slow(): AsyncGenerator<CardRecord> {
        for (let i = 0; i < 2000; i++) {
          if (i % 500 === 0) await new Promise((r) => setImmediate(r));
          yield card(i);
        }
      }
      const { result, pkg } = await written(slow(), T0, meta, file);
      assert.equal(result.cards, 2000);
      assert.equal(pkg.notes.length, 2000);
      assert.equal(pkg.notes[1999]?.['sfld'], '단어1999');
      assert.deepEqual(readdirSync(tmp), []);
    });
  });

  test('a failing card source leaves the old package, no temp file beside it and no temp collection', async () => {
    const dir = tempDir('fc-apkg-');
    const file = join(dir, 'deck.apkg');
    writeFileSync(file, 'old package');
    const tmp = tempDir('fc-apkg-tmp-');
    await withTmpdir(tmp, async () => {
      const boom = new Error('result store went away');
      async function* failing(): AsyncGenerator<CardRecord> {
        for (let i = 0; i < 100; i++) yield card(i);
        throw boom;
      }
      const e = await writeApkg(file, failing(), meta).catch((err: unknown) => err);
      assert.equal(e, boom);
      assert.equal(readFileSync(file, 'utf8'), 'old package');
      assert.deepEqual(readdirSync(dir), ['deck.apkg']);
      assert.deepEqual(readdirSync(tmp), []);
    });
  });

  test('a SQLite error from the card source passes through as it is, not as a temp-directory error', async () => {
    const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    async function* locked(): AsyncGenerator<CardRecord> {
      yield card(0);
      throw busy;
    }
    const e = await writeApkg(join(tempDir('fc-apkg-'), 'deck.apkg'), locked(), meta).catch(
      (err: unknown) => err,
    );
    assert.equal(e, busy);
  });

  test('a missing output directory is a usage error naming it, before any card is read', async () => {
    const dir = tempDir('fc-apkg-');
    const file = relative(process.cwd(), join(dir, 'out', 'deck.apkg'));
    let pulled = 0;
    function* counted(): Generator<CardRecord> {
      pulled++;
      yield card(0);
    }
    const e = await writeApkg(file, counted(), meta).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.kind, 'usage');
    assert.equal(
      e.message,
      `cannot write deck.apkg: directory ${relative(process.cwd(), join(dir, 'out'))}/ does not exist`,
    );
    assert.equal(pulled, 0);
  });

  test('an unusable temp directory is a usage error naming it, with a hint', async () => {
    const dir = tempDir('fc-apkg-');
    const notADir = join(dir, 'file');
    writeFileSync(notADir, '');
    await withTmpdir(notADir, async () => {
      const e = await writeApkg(join(dir, 'deck.apkg'), cards(1), meta).catch((err: unknown) => err);
      assert.ok(isFlashcardsError(e));
      assert.equal(e.kind, 'usage');
      assert.equal(
        e.message,
        `cannot build deck.apkg in the temporary directory ${notADir}: it is not a directory`,
      );
      assert.equal(
        e.hint,
        'the Anki collection is assembled there before zipping: point TMPDIR at a writable directory with free space',
      );
      assert.deepEqual(readdirSync(dir), ['file']);
    });
  });

  test('field names Anki cannot use are usage errors before anything is written', async () => {
    const dir = tempDir('fc-apkg-');
    mkdirSync(join(dir, 'out'));
    const cases: [string[], string][] = [
      [[], 'cannot write an Anki package: there are no fields'],
      [
        ['Front', 'Back:2'],
        'cannot write an Anki package: field name "Back:2" contains one of : { } " or a line break',
      ],
      [
        ['Front', 'Tags'],
        'cannot write an Anki package: field name "Tags" is reserved by Anki for its special {{Tags}} field',
      ],
      [['Front', 'Front'], 'cannot write an Anki package: field name "Front" appears twice'],
    ];
    for (const [fields, message] of cases) {
      const e = await writeApkg(join(dir, 'out', 'deck.apkg'), cards(1), { ...meta, fields }).catch(
        (err: unknown) => err,
      );
      assert.ok(isFlashcardsError(e));
      assert.equal(e.kind, 'usage');
      assert.equal(e.message, message);
    }
    assert.deepEqual(readdirSync(join(dir, 'out')), []);
  });
});
