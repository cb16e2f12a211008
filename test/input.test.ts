import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type InputItem, type InputSource, openInput } from '../src/input/index.ts';
import { eventually } from './support/wait.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fc-input-'));

function write(name: string, content: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

async function readAll(source: InputSource): Promise<InputItem[]> {
  const items: InputItem[] = [];
  for await (const item of source.items) items.push(item);
  return items;
}

async function terms(file: string): Promise<string[]> {
  return (await readAll(await openInput(file))).map((i) => i.term);
}

function stdin(...chunks: (string | Buffer)[]): Readable {
  return Readable.from(chunks.map((c) => Buffer.from(c)));
}

describe('CSV input', () => {
  test('reads korean-20.csv into 20 items with position and type, in order', async () => {
    const source = await openInput(join(fixtures, 'korean-20.csv'));
    assert.equal(source.format, 'csv');
    const items = await readAll(source);
    assert.equal(items.length, 20);
    assert.deepEqual(items[0], {
      index: 0,
      line: 2,
      term: '내가',
      position: '1',
      type: 'pronoun',
      context: {},
    });
    assert.deepEqual(
      { index: items[19]?.index, line: items[19]?.line, position: items[19]?.position },
      { index: 19, line: 21, position: '20' },
    );
    assert.deepEqual(source.stats(), { items: 20, skipped: 0 });
  });

  test('digest is the SHA-256 of the raw file bytes, available once items are consumed', async () => {
    const file = join(fixtures, 'korean-200.csv');
    const source = await openInput(file);
    assert.throws(() => source.digest(), /known only after all of it was read/);
    assert.equal((await readAll(source)).length, 200);
    assert.equal(source.digest(), createHash('sha256').update(readFileSync(file)).digest('hex'));
  });

  for (const name of ['term', 'Word', ' HANGUL ', 'front']) {
    test(`takes the term from a column named "${name}" wherever it is`, async () => {
      const file = write(`named-${name.trim()}.csv`, `notes,${name},english\nhello,안녕,hi\n`);
      const [item] = await readAll(await openInput(file));
      assert.deepEqual(item, {
        index: 0,
        line: 2,
        term: '안녕',
        position: undefined,
        type: undefined,
        context: { notes: 'hello', english: 'hi' },
      });
    });
  }

  test('without a named term column, the first column is the term and the rest is context', async () => {
    const file = write('unnamed.csv', 'korean,english\n사과,apple\n');
    const [item] = await readAll(await openInput(file));
    assert.deepEqual(item?.term, '사과');
    assert.deepEqual(item?.context, { english: 'apple' });
  });

  test('id and pos columns are the position and type; the term falls to the first other column', async () => {
    const file = write('idpos.csv', 'ID,Korean,POS,Example\n7,가다,verb,학교에 가다\n');
    const [item] = await readAll(await openInput(file));
    assert.deepEqual(item, {
      index: 0,
      line: 2,
      term: '가다',
      position: '7',
      type: 'verb',
      context: { Example: '학교에 가다' },
    });
  });

  test('empty context cells are left out; unnamed and duplicate headers get distinct keys', async () => {
    const file = write('ctx.csv', 'term,note,,note\n가다,,x,y\n');
    const [item] = await readAll(await openInput(file));
    assert.deepEqual(item?.context, { column3: 'x', note_2: 'y' });
  });

  test('rows with an empty term are skipped and counted, and indexes stay contiguous', async () => {
    const file = write('gaps.csv', 'position,term\n1,가다\n2,\n3,  \n4,오다\n');
    const source = await openInput(file);
    const items = await readAll(source);
    assert.deepEqual(
      items.map((i) => [i.index, i.line, i.term]),
      [
        [0, 2, '가다'],
        [1, 5, '오다'],
      ],
    );
    assert.deepEqual(source.stats(), { items: 2, skipped: 2 });
  });

  test('a UTF-8 BOM and CRLF line ends are handled; lines count quoted line breaks and blank lines', async () => {
    const source = await openInput(join(fixtures, 'bom-crlf.csv'));
    assert.deepEqual(await readAll(source), [
      {
        index: 0,
        line: 2,
        term: '학교',
        position: '1',
        type: 'noun',
        context: { Example: '저는 학교에 가요,\n매일' },
      },
      { index: 1, line: 5, term: '친구', position: '2', type: 'noun', context: {} },
    ]);
  });

  test('terms are trimmed and normalised to NFC', async () => {
    const decomposed = '한국'.normalize('NFD');
    assert.notEqual(decomposed, '한국');
    assert.deepEqual(await terms(write('nfd.csv', `term\n  ${decomposed}  \n`)), ['한국']);
  });
});

describe('TSV and text input', () => {
  test('reads a TSV with a word column, a notes context column and a pos type column', async () => {
    const source = await openInput(join(fixtures, 'words-notes.tsv'));
    assert.equal(source.format, 'tsv');
    assert.deepEqual(await readAll(source), [
      {
        index: 0,
        line: 2,
        term: '사과',
        position: undefined,
        type: 'noun',
        context: { notes: 'fruit; common' },
      },
      { index: 1, line: 3, term: '먹다', position: undefined, type: 'verb', context: {} },
      {
        index: 2,
        line: 5,
        term: '빨리',
        position: undefined,
        type: 'adverb',
        context: { notes: 'says "quickly"' },
      },
    ]);
    assert.deepEqual(source.stats(), { items: 3, skipped: 1 });
  });

  test('a text list skips blank lines and # comments and keeps file line numbers', async () => {
    const source = await openInput(join(fixtures, 'words-comments.txt'));
    assert.equal(source.format, 'text');
    assert.deepEqual(
      (await readAll(source)).map((i) => [i.index, i.line, i.term, i.context]),
      [
        [0, 2, '가다', {}],
        [1, 4, '오다', {}],
        [2, 7, '먹다', {}],
      ],
    );
  });

  test('a text list with CRLF and a BOM yields clean terms', async () => {
    assert.deepEqual(await terms(write('crlf.txt', '\ufeff가다\r\n오다\r\n')), ['가다', '오다']);
  });

  test('the extension decides the format: .tab is TSV, .list is text', async () => {
    assert.equal((await openInput(write('a.tab', 'x\ty\n1\t2\n'))).format, 'tsv');
    assert.equal((await openInput(write('a.list', 'x,y\n1,2\n'))).format, 'text');
  });

  test('the format option overrides the extension', async () => {
    const source = await openInput(write('forced.txt', 'term,type\n가다,verb\n'), { format: 'csv' });
    assert.equal(source.format, 'csv');
    assert.deepEqual(
      (await readAll(source)).map((i) => i.type),
      ['verb'],
    );
  });
});

describe('stdin and sniffing', () => {
  test("'-' reads the given stdin stream; a tab in the first line means TSV", async () => {
    const source = await openInput('-', { stdin: stdin('word\tnotes\n', '가다\tto go\n') });
    assert.equal(source.name, 'stdin');
    assert.equal(source.format, 'tsv');
    assert.deepEqual(
      (await readAll(source)).map((i) => [i.term, i.context]),
      [['가다', { notes: 'to go' }]],
    );
    assert.equal(source.digest(), createHash('sha256').update('word\tnotes\n가다\tto go\n').digest('hex'));
  });

  test('a comma in a header-looking first line means CSV', async () => {
    const source = await openInput('-', { stdin: stdin('\n\nterm,position\n가다,1\n') });
    assert.equal(source.format, 'csv');
    assert.deepEqual(
      (await readAll(source)).map((i) => [i.line, i.term, i.position]),
      [[4, '가다', '1']],
    );
  });

  test('a comma in a line of Korean text is still a plain list', async () => {
    const source = await openInput('-', { stdin: stdin('안녕, 친구\n가다\n') });
    assert.equal(source.format, 'text');
    assert.deepEqual(await readAll(source).then((items) => items.map((i) => i.term)), ['안녕, 친구', '가다']);
  });

  test('a file without a known extension is sniffed like stdin', async () => {
    assert.equal((await openInput(write('words', 'Word,English\n가다,go\n'))).format, 'csv');
    assert.equal((await openInput(write('words2', '가다\n오다\n'))).format, 'text');
  });

  test('characters split across stdin chunks, past the first 64 KiB, decode intact', async () => {
    const lines = Array.from({ length: 8000 }, (_, i) => `단어${i}`);
    const bytes = Buffer.from(lines.join('\n') + '\n');
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 1001) chunks.push(bytes.subarray(at, at + 1001));
    const source = await openInput('-', { stdin: Readable.from(chunks) });
    const items = await readAll(source);
    assert.equal(items.length, 8000);
    assert.deepEqual(items[7999], {
      index: 7999,
      line: 8000,
      term: '단어7999',
      position: undefined,
      type: undefined,
      context: {},
    });
    assert.equal(source.digest(), createHash('sha256').update(bytes).digest('hex'));
  });
});

describe('reading lifecycle', () => {
  test('items can be read only once', async () => {
    const source = await openInput(join(fixtures, 'korean-20.csv'));
    await readAll(source);
    assert.throws(() => source.items[Symbol.asyncIterator](), { message: /can only be read once/ });
  });

  for (const format of ['txt', 'csv']) {
    test(`breaking out of the loop early closes the file (${format})`, { skip: !isLinux() }, async () => {
      // Larger than the 64 KiB head, so the file is still open when the loop breaks.
      const rows = Array.from({ length: 20_000 }, (_, i) => `단어${i}`);
      const file = write(`big.${format}`, ['term', ...rows].join('\n'));
      const before = openFds();
      const source = await openInput(file);
      let during = 0;
      for await (const item of source.items) {
        during = openFds();
        if (item.index === 3) break;
      }
      assert.equal(during, before + 1);
      // The descriptor is closed asynchronously after the stream is destroyed; a leak never gets
      // there and the test times out.
      await eventually(() => openFds() === before);
      assert.equal(openFds(), before);
    });
  }
});

function isLinux(): boolean {
  return process.platform === 'linux';
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
