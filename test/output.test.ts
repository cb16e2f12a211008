import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { isFlashcardsError } from '../src/core/errors.ts';
import { chooseColumns } from '../src/output/columns.ts';
import { cardGuid, noteGuid } from '../src/output/guid.ts';
import {
  type CardRecord,
  type DeckMeta,
  OUTPUT_FORMATS,
  outputFormatFromPath,
  parseOutputFormat,
  writeOutput,
} from '../src/output/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'fc-output-'));
const meta: DeckMeta = {
  deck: 'Korean::Top 1000',
  noteType: 'Basic',
  tags: ['korean', 'top 1000'],
  fields: ['Front', 'Back'],
  columns: ['term', 'Front', 'Back', 'tags'],
};

const cards: CardRecord[] = [
  {
    item: 0,
    term: '가다',
    fields: { Front: '가다', Back: 'to go' },
    tags: ['verb'],
    key: '가다|recognition',
  },
  {
    item: 1,
    term: '<b>',
    fields: { Front: '<b>&"\'', Back: 'line one\nline two\tafter a tab' },
    tags: ['html test', 'korean'],
    key: '<b>|recognition',
  },
];

async function written(
  name: string,
  format: Parameters<typeof writeOutput>[1],
  list = cards,
  deck = meta,
): Promise<string> {
  const file = join(dir, name);
  await writeOutput(file, format, list, deck);
  return readFileSync(file, 'utf8');
}

describe('anki format', () => {
  test('starts with the header lines that configure Anki’s import (2.1.55+)', async () => {
    const lines = (await written('header.txt', 'anki', [])).split('\n');
    assert.deepEqual(lines, [
      '#separator:tab',
      '#html:true',
      '#deck:Korean::Top 1000',
      '#notetype:Basic',
      '#columns:Front\tBack\tTags\tGUID',
      '#tags column:3',
      '#guid column:4',
      '',
    ]);
  });

  test('writes one line per card: escaped HTML, <br> for newlines, spaces for tabs, tags, GUID', async () => {
    const lines = (await written('deck.txt', 'anki')).split('\n').slice(7);
    assert.deepEqual(lines, [
      `가다\tto go\tverb korean top_1000\t${cardGuid(cards[0]!, meta)}`,
      `&lt;b&gt;&amp;&quot;&#39;\tline one<br>line two after a tab\thtml_test korean top_1000\t${cardGuid(cards[1]!, meta)}`,
      '',
    ]);
  });

  test('fields are trimmed, CRLF is one <br>, and header values cannot break the header', async () => {
    const file = join(dir, 'trim.txt');
    const card: CardRecord = {
      item: 0,
      term: 'x',
      fields: { Front: '  x \n', Back: 'a\r\nb' },
      tags: [],
      key: 'x',
    };
    const deck = { ...meta, deck: 'A\nB', tags: [] };
    await writeOutput(file, 'anki', [card], deck);
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[2], '#deck:A B');
    assert.equal(lines[7], `x\ta<br>b\t\t${cardGuid(card, deck)}`);
  });

  test('--fields chooses and orders the note fields; without tags there is no tags column', async () => {
    const chosen = { ...meta, ...chooseColumns(['Front', 'Back'], ['back', 'term']) };
    const lines = (await written('chosen.txt', 'anki', cards, chosen)).split('\n');
    assert.equal(lines[4], '#columns:Back\tterm\tGUID');
    assert.equal(lines[6], '#guid column:3');
    assert.equal(lines[7], `to go\t가다\t${cardGuid(cards[0]!, chosen)}`);
  });

  test('--fields without tags still gives every note the deck’s tags, in a #tags: header line', async () => {
    const chosen = { ...meta, ...chooseColumns(['Front', 'Back'], ['Front', 'Back']) };
    const lines = (await written('deck-tags.txt', 'anki', cards, chosen)).split('\n');
    assert.deepEqual(lines.slice(0, 7), [
      '#separator:tab',
      '#html:true',
      '#deck:Korean::Top 1000',
      '#notetype:Basic',
      '#columns:Front\tBack\tGUID',
      '#tags:korean top_1000',
      '#guid column:3',
    ]);
    assert.equal(lines[7], `가다\tto go\t${cardGuid(cards[0]!, chosen)}`);
  });

  test('no #tags: line when the deck has no tags or the tags are a column', async () => {
    const untagged = { ...meta, ...chooseColumns(['Front', 'Back'], ['Front', 'Back']), tags: [' '] };
    const bare = (await written('no-deck-tags.txt', 'anki', [], untagged)).split('\n');
    const tagged = (await written('tags-column.txt', 'anki', [], meta)).split('\n');
    assert.deepEqual(
      bare.filter((l) => l.startsWith('#tags')),
      [],
    );
    assert.deepEqual(
      tagged.filter((l) => l.startsWith('#tags')),
      ['#tags column:3'],
    );
  });

  test('a first cell starting with # is written as &#35; so Anki does not skip the row as a comment', async () => {
    const hashed: CardRecord[] = [
      { item: 0, term: '#1 hit', fields: { Front: ' #1 hit', Back: '# of items' }, tags: [], key: 'a' },
      { item: 1, term: 'C#', fields: { Front: 'C#', Back: '#' }, tags: [], key: 'b' },
    ];
    const chosen = { ...meta, ...chooseColumns(['Front', 'Back'], ['term', 'Back']), tags: [] };
    const lines = (await written('hash.txt', 'anki', hashed, { ...meta, tags: [] })).split('\n');
    const byTerm = (await written('hash-term.txt', 'anki', hashed, chosen)).split('\n');
    assert.deepEqual(lines.slice(7, 9), [
      `&#35;1 hit\t# of items\t\t${cardGuid(hashed[0]!, { ...meta, tags: [] })}`,
      `C#\t#\t\t${cardGuid(hashed[1]!, { ...meta, tags: [] })}`,
    ]);
    assert.equal(byTerm[6], `&#35;1 hit\t# of items\t${cardGuid(hashed[0]!, chosen)}`);
  });

  test('the same card in two decks gets two GUIDs, so importing one deck does not overwrite the other', async () => {
    const german = { ...meta, deck: 'Korean::German' };
    const [english] = (await written('english.txt', 'anki', cards.slice(0, 1))).split('\n').slice(7);
    const [inGerman] = (await written('german.txt', 'anki', cards.slice(0, 1), german)).split('\n').slice(7);
    const [again] = (await written('english-again.txt', 'anki', cards.slice(0, 1))).split('\n').slice(7);
    const guid = (line: string | undefined) => line?.split('\t').at(-1);
    assert.notEqual(guid(inGerman), guid(english));
    assert.equal(guid(again), guid(english));
    assert.equal(guid(english), cardGuid(cards[0]!, meta));
  });
});

describe('note GUIDs', () => {
  test('are stable per key, differ between keys and use no quote, tab or backslash', () => {
    assert.equal(noteGuid('가다|recognition'), noteGuid('가다|recognition'));
    assert.notEqual(noteGuid('가다|recognition'), noteGuid('가다|production'));
    for (let i = 0; i < 500; i++) assert.match(noteGuid(`k${i}`), /^[^"'\t\\ ]{1,11}$/);
  });

  test('a card’s GUID is the note GUID of note type, deck and key, so it differs between decks and note types', () => {
    const card = cards[0]!;
    assert.equal(cardGuid(card, meta), noteGuid('Basic\u001fKorean::Top 1000\u001f가다|recognition'));
    assert.equal(cardGuid(card, { ...meta, fields: ['Back'], tags: [] }), cardGuid(card, meta));
    assert.notEqual(cardGuid(card, { ...meta, deck: 'Korean::German' }), cardGuid(card, meta));
    assert.notEqual(cardGuid(card, { ...meta, noteType: 'Basic (reversed)' }), cardGuid(card, meta));
    assert.notEqual(cardGuid(card, meta), noteGuid(card.key));
  });
});

describe('csv format', () => {
  test('writes an RFC 4180 file with a header and quotes only where needed', async () => {
    const content = await written('deck.csv', 'csv');
    assert.equal(
      content,
      'term,Front,Back,tags\r\n' +
        '가다,가다,to go,verb korean top_1000\r\n' +
        '<b>,"<b>&""\'","line one\nline two\tafter a tab",html_test korean top_1000\r\n',
    );
  });

  test('quotes commas and edge spaces', async () => {
    const card: CardRecord = {
      item: 0,
      term: 'a,b',
      fields: { Front: ' padded', Back: 'x' },
      tags: [],
      key: 'a',
    };
    const content = await written('quote.csv', 'csv', [card]);
    assert.equal(content.split('\r\n')[1], '"a,b"," padded",x,korean top_1000');
  });

  test('--fields picks the columns in the given order', async () => {
    const chosen = { ...meta, ...chooseColumns(['Front', 'Back'], ['tags', 'BACK']) };
    assert.equal(
      await written('picked.csv', 'csv', cards.slice(0, 1), chosen),
      'tags,Back\r\nverb korean top_1000,to go\r\n',
    );
  });
});

describe('json formats', () => {
  test('jsonl: one parseable object per card with the chosen columns, the merged tags and the key', async () => {
    const lines = (await written('deck.jsonl', 'jsonl')).split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.deepEqual(JSON.parse(lines[0]!), {
      item: 0,
      term: '가다',
      fields: { Front: '가다', Back: 'to go' },
      tags: ['verb', 'korean', 'top_1000'],
      key: '가다|recognition',
    });
    assert.equal(JSON.parse(lines[1]!).fields.Front, '<b>&"\'');
  });

  test('json: one array, streamed, empty when there are no cards', async () => {
    const parsed = JSON.parse(await written('deck.json', 'json')) as Array<{ term: string }>;
    assert.deepEqual(
      parsed.map((c) => c.term),
      ['가다', '<b>'],
    );
    assert.deepEqual(JSON.parse(await written('empty.json', 'json', [])), []);
  });
});

describe('choosing columns', () => {
  test('defaults to term, every field, tags; an unknown name is a usage error with a suggestion', () => {
    assert.deepEqual(chooseColumns(['Front', 'Back'], undefined), {
      fields: ['Front', 'Back'],
      columns: ['term', 'Front', 'Back', 'tags'],
    });
    assert.throws(
      () => chooseColumns(['Front', 'Back'], ['Frnt']),
      (e: unknown) =>
        isFlashcardsError(e) &&
        e.exitCode === 2 &&
        /"Frnt" is not a field of this pipeline \(did you mean Front\?\)/.test(e.message),
    );
    assert.throws(() => chooseColumns(['Front'], ['tags']), /at least one field besides tags/);
  });
});

describe('writeOutput', () => {
  test('returns the card count, the byte count and the absolute path', async () => {
    const file = join(dir, 'count.txt');
    async function* generate(): AsyncGenerator<CardRecord> {
      yield* cards;
    }
    const result = await writeOutput(file, 'anki', generate(), meta);
    assert.deepEqual(result, { cards: 2, bytes: statSync(file).size, path: file });
  });

  test("'-' streams to the given stdout and reports path 'stdout'", async () => {
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const result = await writeOutput('-', 'jsonl', cards, meta, { stdout });
    const text = Buffer.concat(chunks).toString('utf8');
    assert.equal(text.split('\n').length, 3);
    assert.deepEqual(result, { cards: 2, bytes: Buffer.byteLength(text), path: 'stdout' });
  });

  test("'-' waits for a slow reader instead of buffering everything", async () => {
    let received = '';
    let maxBuffered = 0;
    const stdout: Writable = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, done) {
        received += chunk.toString('utf8');
        maxBuffered = Math.max(maxBuffered, stdout.writableLength);
        setImmediate(done);
      },
    });
    const many = Array.from({ length: 20_000 }, (_, i) => ({ ...cards[0]!, item: i, term: `단어${i}` }));
    const result = await writeOutput('-', 'csv', many, meta, { stdout });
    await new Promise((r) => stdout.end(r));
    assert.equal(received.split('\r\n').length, 20_002);
    assert.equal(result.bytes, Buffer.byteLength(received));
    // At most one ~64 KiB chunk is ever queued.
    assert.ok(maxBuffered <= 70_000 * 3, `queued ${maxBuffered} bytes`);
  });

  test('a stdout that errors becomes a usage error', async () => {
    const stdout = new Writable({
      write(_chunk, _enc, done) {
        done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const many = Array.from({ length: 3000 }, (_, i) => ({ ...cards[0]!, item: i }));
    const e = await writeOutput('-', 'anki', many, meta, { stdout }).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.message, 'cannot write to stdout: write EPIPE');
  });
});

describe('format names', () => {
  test('parseOutputFormat accepts the format names in any case', () => {
    assert.deepEqual(OUTPUT_FORMATS, ['anki', 'csv', 'jsonl', 'json', 'apkg']);
    assert.equal(parseOutputFormat(' JSONL '), 'jsonl');
    assert.equal(parseOutputFormat('anki'), 'anki');
  });

  test('an unknown format is a usage error listing the choices', () => {
    assert.throws(
      () => parseOutputFormat('xml'),
      (e: unknown) =>
        isFlashcardsError(e) &&
        e.kind === 'usage' &&
        e.exitCode === 2 &&
        e.message === 'unknown --format "xml"; expected anki, csv, jsonl, json, apkg',
    );
  });

  test('outputFormatFromPath reads the extension', () => {
    assert.deepEqual(
      [
        'deck.csv',
        'deck.JSONL',
        'deck.ndjson',
        'deck.json',
        'deck.txt',
        'deck.tsv',
        'deck.apkg',
        'deck',
        '-',
      ].map(outputFormatFromPath),
      ['csv', 'jsonl', 'jsonl', 'json', 'anki', 'anki', 'apkg', undefined, undefined],
    );
  });
});
