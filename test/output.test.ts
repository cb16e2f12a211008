import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { isFlashcardsError } from '../src/core/errors.ts';
import {
  type CardRecord,
  type DeckMeta,
  OUTPUT_FORMATS,
  outputFormatFromPath,
  parseOutputFormat,
  writeOutput,
} from '../src/output/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'fc-output-'));
const meta: DeckMeta = { deck: 'Korean::Top 1000', noteType: 'Basic', tags: ['korean', 'top 1000'] };

const cards: CardRecord[] = [
  { item: 0, term: '가다', front: '가다', back: 'to go', cardType: 'recognition', tags: ['verb'] },
  {
    item: 1,
    term: '<b>',
    front: '<b>&"\'',
    back: 'line one\nline two\tafter a tab',
    cardType: 'recognition',
    tags: ['html test', 'korean'],
    extra: { romanization: 'b' },
  },
];

async function written(
  name: string,
  format: Parameters<typeof writeOutput>[1],
  list = cards,
): Promise<string> {
  const file = join(dir, name);
  await writeOutput(file, format, list, meta);
  return readFileSync(file, 'utf8');
}

describe('anki format', () => {
  test('starts with the header lines that configure Anki’s import', async () => {
    const lines = (await written('header.txt', 'anki', [])).split('\n');
    assert.deepEqual(lines, [
      '#separator:tab',
      '#html:true',
      '#deck:Korean::Top 1000',
      '#notetype:Basic',
      '#columns:Front\tBack\tTags',
      '#tags column:3',
      '',
    ]);
  });

  test('writes one line per card: escaped HTML, <br> for newlines, spaces for tabs, then tags', async () => {
    const lines = (await written('deck.txt', 'anki')).split('\n').slice(6);
    assert.deepEqual(lines, [
      '가다\tto go\tverb korean top_1000',
      '&lt;b&gt;&amp;&quot;&#39;\tline one<br>line two after a tab\thtml_test korean top_1000',
      '',
    ]);
  });

  test('fields are trimmed, CRLF is one <br>, and header values cannot break the header', async () => {
    const file = join(dir, 'trim.txt');
    const card: CardRecord = { item: 0, term: 'x', front: '  x \n', back: 'a\r\nb', cardType: 't', tags: [] };
    await writeOutput(file, 'anki', [card], { deck: 'A\nB', noteType: 'Basic', tags: [] });
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[2], '#deck:A B');
    assert.equal(lines[6], 'x\ta<br>b\t');
  });
});

describe('csv format', () => {
  test('writes an RFC 4180 file with a header and quotes only where needed', async () => {
    const content = await written('deck.csv', 'csv');
    assert.equal(
      content,
      'term,front,back,card_type,tags\r\n' +
        '가다,가다,to go,recognition,verb korean top_1000\r\n' +
        '<b>,"<b>&""\'","line one\nline two\tafter a tab",recognition,html_test korean top_1000\r\n',
    );
  });

  test('quotes commas and edge spaces', async () => {
    const card: CardRecord = { item: 0, term: 'a,b', front: ' padded', back: 'x', cardType: 't', tags: [] };
    const content = await written('quote.csv', 'csv', [card]);
    assert.equal(content.split('\r\n')[1], '"a,b"," padded",x,t,korean top_1000');
  });
});

describe('jsonl format', () => {
  test('writes one parseable object per card with every field and the merged tags', async () => {
    const lines = (await written('deck.jsonl', 'jsonl')).split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.deepEqual(JSON.parse(lines[0]!), {
      item: 0,
      term: '가다',
      front: '가다',
      back: 'to go',
      cardType: 'recognition',
      tags: ['verb', 'korean', 'top_1000'],
    });
    assert.deepEqual(JSON.parse(lines[1]!), {
      item: 1,
      term: '<b>',
      front: '<b>&"\'',
      back: 'line one\nline two\tafter a tab',
      cardType: 'recognition',
      tags: ['html_test', 'korean', 'top_1000'],
      extra: { romanization: 'b' },
    });
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
  test('parseOutputFormat accepts the three names in any case', () => {
    assert.deepEqual(OUTPUT_FORMATS, ['anki', 'csv', 'jsonl']);
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
        e.message === 'unknown --format "xml"; expected anki, csv or jsonl',
    );
  });

  test('outputFormatFromPath reads the extension', () => {
    assert.deepEqual(
      ['deck.csv', 'deck.JSONL', 'deck.ndjson', 'deck.txt', 'deck.tsv', 'deck.apkg', '-'].map(
        outputFormatFromPath,
      ),
      ['csv', 'jsonl', 'jsonl', 'anki', 'anki', undefined, undefined],
    );
  });
});
