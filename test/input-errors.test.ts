import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isFlashcardsError } from '../src/core/errors.ts';
import { openInput } from '../src/input/index.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'fc-input-err-'));

function write(name: string, content: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

/** Opens and reads everything; resolves to the error, whichever step threw it. */
async function failure(
  file: string,
  opts?: Parameters<typeof openInput>[1],
): Promise<{ message: string; hint?: string | undefined; kind: string; exitCode: number }> {
  try {
    const source = await openInput(file, opts);
    for await (const _ of source.items) {
      // drain
    }
  } catch (e) {
    assert.ok(isFlashcardsError(e), `expected a FlashcardsError, got ${String(e)}`);
    return { message: e.message, hint: e.hint, kind: e.kind, exitCode: e.exitCode };
  }
  assert.fail(`${file} was read without an error`);
}

async function openFailure(file: string): Promise<string> {
  const e = await openInput(file).then(
    () => assert.fail('openInput resolved'),
    (err: unknown) => err,
  );
  assert.ok(isFlashcardsError(e));
  return e.message;
}

describe('files that cannot be read', () => {
  test('a missing file is an input error (exit 2) naming the path, with the absolute path as hint', async () => {
    const file = join(dir, 'words.csv');
    assert.deepEqual(await failure(file), {
      message: `input file not found: ${file}`,
      hint: `looked for ${resolve(file)}`,
      kind: 'input',
      exitCode: 2,
    });
  });

  test('a directory is rejected when opened', async () => {
    const sub = join(dir, 'words.d');
    mkdirSync(sub);
    assert.equal(await openFailure(sub), `${sub} is a directory, not a file`);
  });

  test('an unreadable file is rejected when opened', {
    skip: process.getuid?.() === 0 && 'root reads anything',
  }, async () => {
    const file = write('secret.csv', 'term\n가다\n');
    chmodSync(file, 0o000);
    assert.equal(await openFailure(file), `cannot read ${file}: permission denied`);
  });

  test('an empty file is rejected when opened', async () => {
    const file = join(fixtures, 'empty.csv');
    assert.equal(await openFailure(file), `${file} is empty`);
  });

  test('a file of only whitespace and a BOM counts as empty', async () => {
    const file = write('blank.txt', '\ufeff \r\n\n\t\n');
    assert.equal(await openFailure(file), `${file} is empty`);
  });

  test('empty stdin is named stdin', async () => {
    const e = await openInput('-', { stdin: Readable.from([]) }).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.message, 'stdin is empty');
  });

  test('NUL bytes make a file binary, rejected when opened', async () => {
    const file = write(
      'image.csv',
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
    );
    assert.equal(await openFailure(file), `${file} does not look like UTF-8 text (found binary data)`);
  });

  test('Latin-1 text is not UTF-8', async () => {
    const file = write('latin1.txt', Buffer.from('caf\xe9\n', 'latin1'));
    assert.equal(await openFailure(file), `${file} does not look like UTF-8 text (found binary data)`);
  });

  test('UTF-16 gets a hint to re-save as UTF-8', async () => {
    const file = write(
      'utf16.csv',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('term\n', 'utf16le')]),
    );
    assert.equal(
      (await failure(file)).hint,
      'it looks like UTF-16; save it as UTF-8 (in Excel: "CSV UTF-8")',
    );
  });

  test('a file cut off in the middle of a character is not UTF-8', async () => {
    const file = write('cut.txt', Buffer.from('가다\n오').subarray(0, -1));
    assert.equal(await openFailure(file), `${file} does not look like UTF-8 text (found binary data)`);
  });

  test('binary data after the first 64 KiB is reported with its line while reading', async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `word${i}`);
    const file = write(
      'late-binary.txt',
      Buffer.concat([Buffer.from(lines.join('\n') + '\n'), Buffer.from([0xff, 0x0a])]),
    );
    assert.equal((await failure(file)).message, `${file}: line 10001 is not UTF-8 text (found binary data)`);
  });
});

describe('malformed CSV', () => {
  test('an unclosed quote names the line where the quote opened', async () => {
    const file = join(fixtures, 'malformed-quote.csv');
    const e = await failure(file);
    assert.equal(e.message, `${file}: line 4: unclosed quote`);
    assert.equal(e.exitCode, 2);
  });

  test('a row with more fields than the header names its line and both counts', async () => {
    const rows = Array.from({ length: 10 }, (_, i) => `${i + 1},단어${i},noun`);
    const file = write('wide.csv', ['position,term,type', ...rows, '11,a,b,c,d', '12,e,f'].join('\n'));
    assert.equal((await failure(file)).message, `${file}: line 12 has 5 fields, the header has 3`);
  });

  test('a row with one field says "field"', async () => {
    const file = write('narrow.csv', 'term,type\n가다,verb\n\n오다\n');
    assert.equal((await failure(file)).message, `${file}: line 4 has 1 field, the header has 2`);
  });

  test('line numbers after a quoted CRLF line break stay right', async () => {
    const file = write('crlf-bad.csv', 'term,note\r\n가다,"a\r\nb"\r\n오다\r\n');
    assert.equal((await failure(file)).message, `${file}: line 4 has 1 field, the header has 2`);
  });

  test('text after a closing quote is an error with the line', async () => {
    const file = write('closing.csv', 'term,note\n가다,ok\n오다,"said "hi" twice"\n');
    assert.equal((await failure(file)).message, `${file}: line 3: unexpected text after a closing quote`);
  });

  test('a quote in the middle of an unquoted CSV field is an error with the line', async () => {
    const file = write('opening.csv', 'term,note\n가다,say "hi"\n');
    assert.equal(
      (await failure(file)).message,
      `${file}: line 2: a quote in the middle of an unquoted field`,
    );
  });

  test('a quote left open in a large file stops at 64 KiB instead of reading to the end', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => `단어${i},note`);
    const file = write('open-quote.csv', ['term,note', '가다,"oops', ...rows].join('\n'));
    const e = await failure(file);
    assert.equal(e.message, `${file}: line 2: the row is longer than 65536 bytes`);
    assert.equal(e.hint, 'is a quote left open on this line?');
  });

  test('a header-only CSV has no data rows', async () => {
    const file = join(fixtures, 'header-only.csv');
    assert.equal((await failure(file)).message, `${file} has a header row but no data rows`);
  });

  test('a CSV whose term cells are all empty is an error naming the column', async () => {
    const file = write('no-terms.csv', 'id,word\n1,\n2,\n');
    assert.equal((await failure(file)).message, `${file}: all 2 rows have an empty "word" cell`);
  });

  test('a semicolon-separated file read as CSV is caught at the header', async () => {
    const file = write('semi.csv', 'term;type\n가다;verb\n');
    assert.equal(
      (await failure(file)).message,
      `${file}: the header "term;type" is one column; is the file separated by semicolons?`,
    );
  });

  test('a tab-separated file named .csv is caught at the header', async () => {
    const file = write('tabs.csv', 'term\ttype\n가다\tverb\n');
    const e = await failure(file);
    assert.equal(
      e.message,
      `${file}: the header "term\\ttype" is one column; is the file separated by tabs?`,
    );
    assert.equal(e.hint, 'name it .tsv, or read it as TSV');
  });

  test('a one-column CSV is fine', async () => {
    const source = await openInput(write('one.csv', 'term\n가다\n'));
    for await (const item of source.items) assert.equal(item.term, '가다');
    assert.equal(source.stats().items, 1);
  });

  test('a text list with only comments has no terms', async () => {
    const file = write('comments.txt', '# nothing here\n\n# still nothing\n');
    assert.equal((await failure(file)).message, `${file} has no terms, only blank lines and comments`);
  });
});

describe('term length', () => {
  test('a CSV term over 200 characters is an error naming the line', async () => {
    const file = write('long.csv', `term\n가다\n${'가'.repeat(201)}\n`);
    const e = await failure(file);
    assert.equal(e.message, `${file}: line 3: the term is 201 characters long; the limit is 200`);
    assert.equal(e.hint, 'the term is read from column "term"; longer text belongs in another column');
  });

  test('exactly 200 characters, counted as code points, is allowed', async () => {
    const file = write('max.txt', `${'😀'.repeat(200)}\n`);
    const source = await openInput(file);
    for await (const item of source.items) assert.equal([...item.term].length, 200);
    assert.equal(source.stats().items, 1);
  });

  test('a text line over 200 characters is an error naming the line', async () => {
    const file = write('long.txt', `가다\n\n${'x'.repeat(250)}\n`);
    assert.equal(
      (await failure(file)).message,
      `${file}: line 3: the term is 250 characters long; the limit is 200`,
    );
  });

  test('a text file with no line breaks stops buffering at 64 KiB', async () => {
    const file = write('one-line.txt', 'x'.repeat(200_000));
    assert.equal((await failure(file)).message, `${file}: line 1 is over 65536 characters long`);
  });
});
