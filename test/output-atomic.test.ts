import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { isFlashcardsError } from '../src/core/errors.ts';
import { isProcessRunning } from '../src/core/process-alive.ts';
import { type CardRecord, type DeckMeta, writeOutput } from '../src/output/index.ts';

const meta: DeckMeta = {
  deck: 'Korean',
  noteType: 'Basic',
  tags: [],
  fields: ['Front', 'Back'],
  columns: ['term', 'Front', 'Back', 'tags'],
};

function card(i: number): CardRecord {
  return {
    item: i,
    term: `단어${i}`,
    fields: { Front: `단어${i}`, Back: `word number ${i}` },
    tags: [],
    key: `단어${i}`,
  };
}

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'fc-atomic-'));
}

describe('atomic file output', () => {
  test('a process killed but not yet reaped (a zombie) counts as dead', {
    skip: process.platform !== 'linux',
  }, async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const pid = child.pid;
    assert.ok(pid);
    assert.equal(isProcessRunning(pid), true);
    // Killed, and not reaped yet: its exit is only observed once the event loop runs again, so
    // this loop blocks it. The kernel makes the process a zombie soon after the signal, however
    // busy the machine. The loop blocks the test runner's own timeout too, hence a hang guard of
    // its own: a minute, far beyond any scheduling delay, so it can only catch a real failure.
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 6000 && isProcessRunning(pid); i++) spawnSync('sleep', ['0.01']);
    assert.equal(isProcessRunning(pid), false);
    await new Promise((resolve) => child.once('exit', resolve));
  });

  test('a write removes the temp files that dead processes on this host left for the same file', async () => {
    const dir = freshDir();
    const host = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    assert.ok(dead);
    const abandoned = `.deck.tsv.${dead}-${host}.0123456789ab.tmp`;
    const kept = [
      `.deck.tsv.${process.pid}-${host}.0123456789ab.tmp`, // a live process is still writing it
      `.deck.tsv.${dead}-00000000.0123456789ab.tmp`, // another machine's, on a shared disk
      `.other.tsv.${dead}-${host}.0123456789ab.tmp`, // another file's
    ];
    for (const name of [abandoned, ...kept]) writeFileSync(join(dir, name), 'partial');
    await writeOutput(join(dir, 'deck.tsv'), 'anki', [card(1)], meta);
    assert.deepEqual(readdirSync(dir).sort(), ['deck.tsv', ...kept].sort());
  });

  test('when the cards fail midway, the old deck stays intact and no temp file is left', async () => {
    const dir = freshDir();
    const file = join(dir, 'deck.txt');
    writeFileSync(file, 'old deck\n');
    const boom = new Error('result store went away');
    async function* failing(): AsyncGenerator<CardRecord> {
      // Enough cards to flush several chunks into the temp file before failing.
      for (let i = 0; i < 10_000; i++) yield card(i);
      throw boom;
    }
    const e = await writeOutput(file, 'anki', failing(), meta).catch((err: unknown) => err);
    assert.equal(e, boom);
    assert.equal(readFileSync(file, 'utf8'), 'old deck\n');
    assert.deepEqual(readdirSync(dir), ['deck.txt']);
  });

  test('a successful write replaces the old deck, keeps its permissions and leaves only the deck', async () => {
    const dir = freshDir();
    const file = join(dir, 'deck.csv');
    writeFileSync(file, 'old');
    chmodSync(file, 0o640);
    const result = await writeOutput(file, 'csv', [card(0), card(1)], meta);
    assert.equal(
      readFileSync(file, 'utf8'),
      'term,Front,Back,tags\r\n단어0,단어0,word number 0,\r\n단어1,단어1,word number 1,\r\n',
    );
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(dir), ['deck.csv']);
    assert.equal(result.bytes, statSync(file).size);
  });

  test('100,000 cards stream to disk in order', async () => {
    const dir = freshDir();
    const file = join(dir, 'big.jsonl');
    function* many(): Generator<CardRecord> {
      for (let i = 0; i < 100_000; i++) yield card(i);
    }
    const result = await writeOutput(file, 'jsonl', many(), meta);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(result.cards, 100_000);
    assert.equal(lines.length, 100_000);
    assert.equal((JSON.parse(lines[99_999]!) as CardRecord).item, 99_999);
  });

  test('a missing output directory is a usage error naming it, before any card is read', async () => {
    const dir = freshDir();
    const file = relative(process.cwd(), join(dir, 'out', 'deck.tsv'));
    let pulled = 0;
    function* counted(): Generator<CardRecord> {
      pulled++;
      yield card(0);
    }
    const e = await writeOutput(file, 'anki', counted(), meta).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.kind, 'usage');
    assert.equal(
      e.message,
      `cannot write deck.tsv: directory ${relative(process.cwd(), join(dir, 'out'))}/ does not exist`,
    );
    assert.equal(pulled, 0);
  });

  test('a directory in place of the deck is a usage error', async () => {
    const dir = freshDir();
    const file = join(dir, 'deck.txt');
    mkdirSync(file);
    const e = await writeOutput(file, 'anki', [card(0)], meta).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.message, `cannot write ${file}: it is a directory`);
  });

  test('a file in place of the output directory is a usage error', async () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'out'), '');
    const file = join(dir, 'out', 'deck.txt');
    const e = await writeOutput(file, 'anki', [card(0)], meta).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.message, `cannot write deck.txt: ${join(dir, 'out')}/ is not a directory`);
  });

  test('an unwritable directory is a usage error', {
    skip: process.getuid?.() === 0 && 'root writes anywhere',
  }, async () => {
    const dir = freshDir();
    const out = join(dir, 'locked');
    mkdirSync(out, 0o555);
    const e = await writeOutput(join(out, 'deck.txt'), 'anki', [card(0)], meta).catch((err: unknown) => err);
    assert.ok(isFlashcardsError(e));
    assert.equal(e.message, `cannot write deck.txt: permission denied in ${out}/`);
    assert.deepEqual(readdirSync(out), []);
  });
});
