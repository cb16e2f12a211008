import { createHash, hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { Zip, ZipDeflate } from 'fflate';
import { errorMessage, FlashcardsError } from '../core/errors.ts';
import { ankiField } from './anki.ts';
import { writeFileAtomic } from './atomic.ts';
import { fieldValue } from './columns.ts';
import { ankiFieldsProblem } from './field-names.ts';
import { cardGuid, noteGuid } from './guid.ts';
import { cardTemplate, NOTE_TYPE_CSS } from './note-type.ts';
import { cardTags } from './tags.ts';
import type { CardRecord, DeckMeta } from './types.ts';

/** Note GUIDs, shared with the text format's GUID column. */
export { cardGuid, noteGuid };

export interface ApkgOptions {
  /** Clock in ms since the epoch: note and card ids, modification times, the zip entries' dates. */
  now?: () => number;
}

export interface ApkgResult {
  cards: number;
  bytes: number;
  /** Absolute path of the written package. */
  path: string;
}

/**
 * Writes an Anki package: a zip holding `collection.anki2` (the legacy schema 11 collection that
 * every Anki 2.1 desktop and AnkiDroid imports) and an empty `media` map. The collection is built
 * in a temp directory under os.tmpdir(), with cards inserted one at a time as they arrive, then
 * zipped straight into the target (temp file + rename, see writeFileAtomic). Notes get GUIDs from
 * their note type, deck and card key (cardGuid), and the note type and deck get ids from their
 * names, so importing a newer export of the same deck updates its notes instead of adding copies,
 * and the same word in another deck stays a note of its own.
 */
export async function writeApkg(
  file: string,
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  opts: ApkgOptions = {},
): Promise<ApkgResult> {
  checkMeta(meta);
  const now = opts.now ?? Date.now;
  const count = { cards: 0 };
  // writeFileAtomic checks the target before pulling the first chunk, so a bad path fails before
  // any card is read; the package is built only once the temp file is open.
  const { bytes, path } = await writeFileAtomic(file, packageChunks(file, cards, meta, now(), count));
  return { cards: count.cards, bytes, path };
}

function checkMeta(meta: DeckMeta): void {
  const invalid = (message: string): FlashcardsError =>
    new FlashcardsError('usage', `cannot write an Anki package: ${message}`, {
      hint: 'rename the field in the pipeline file, or choose other fields with --fields',
    });
  if (meta.deck.trim() === '') throw invalid('the deck name is empty');
  if (meta.noteType.trim() === '') throw invalid('the note type name is empty');
  const problem = ankiFieldsProblem(meta.fields);
  if (problem) throw invalid(problem);
}

/** The zipped package, built when the first chunk is pulled; the temp directory goes in every case. */
async function* packageChunks(
  file: string,
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  nowMs: number,
  count: { cards: number },
): AsyncGenerator<Uint8Array> {
  const scratch = new Scratch(file, tmpdir());
  const dir = await scratch.runAsync(() => mkdtemp(join(tmpdir(), 'flashcards-apkg-')));
  scratch.dir = dir;
  try {
    const collection = join(dir, 'collection.anki2');
    count.cards = await buildCollection(collection, cards, meta, nowMs, scratch);
    yield* zipStream(
      [
        { name: 'collection.anki2', data: scratch.read(collection) },
        { name: 'media', data: [new TextEncoder().encode('{}')] },
      ],
      new Date(nowMs),
    );
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * Work on the temp collection. Its file-system and SQLite failures become usage errors naming the
 * temp directory; errors from the card source pass through untouched, whatever their code.
 */
class Scratch {
  /** The temp directory, once made; os.tmpdir() before. */
  dir: string;
  readonly #file: string;

  constructor(file: string, dir: string) {
    this.#file = file;
    this.dir = dir;
  }

  run<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      return this.#fail(e);
    }
  }

  async runAsync<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (e) {
      return this.#fail(e);
    }
  }

  async *read(path: string): AsyncGenerator<Uint8Array> {
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      for (;;) {
        const next = await this.runAsync(() => chunks.next());
        if (next.done) return;
        yield next.value;
      }
    } finally {
      // Also when the consumer stops early (the target failed): release the file at once.
      stream.destroy();
    }
  }

  #fail(e: unknown): never {
    const code = (e as { code?: unknown } | undefined)?.code;
    if (typeof code !== 'string' || !/^(E[A-Z]+|SQLITE_[A-Z_]+)$/.test(code)) throw e;
    throw new FlashcardsError(
      'usage',
      `cannot build ${basename(this.#file)} in the temporary directory ${this.dir}: ${scratchReason(code, e)}`,
      {
        hint: 'the Anki collection is assembled there before zipping: point TMPDIR at a writable directory with free space',
        cause: e,
      },
    );
  }
}

function scratchReason(code: string, e: unknown): string {
  switch (code) {
    case 'ENOENT':
      return 'it does not exist';
    case 'ENOTDIR':
      return 'it is not a directory';
    case 'ENOSPC':
    case 'SQLITE_FULL':
      return 'no space left on the device';
    case 'EACCES':
    case 'EPERM':
    case 'SQLITE_READONLY':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    default:
      return errorMessage(e);
  }
}

/** Fills a schema 11 collection: one note and one new card per card record, in one transaction. */
async function buildCollection(
  file: string,
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  nowMs: number,
  scratch: Scratch,
): Promise<number> {
  const db = scratch.run(() => new Database(file));
  try {
    const ids = { deck: deckId(meta.deck), model: modelId(meta) };
    const mod = Math.floor(nowMs / 1000);
    const { insertNote, insertCard, insertCol } = scratch.run(() => {
      // A scratch file: no journal file and no fsync; a failure discards it anyway.
      db.pragma('journal_mode = MEMORY');
      db.pragma('synchronous = OFF');
      db.exec(SCHEMA);
      return {
        insertNote: db.prepare(
          'INSERT INTO notes (id, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data) ' +
            "VALUES (?, ?, ?, ?, -1, ?, ?, ?, ?, 0, '')",
        ),
        insertCard: db.prepare(
          'INSERT INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, reps, lapses, ' +
            "left, odue, odid, flags, data) VALUES (?, ?, ?, 0, ?, -1, 0, 0, ?, 0, 0, 0, 0, 0, 0, 0, 0, '')",
        ),
        insertCol: db.prepare(
          'INSERT INTO col (id, crt, mod, scm, ver, dty, usn, ls, conf, models, decks, dconf, tags) ' +
            'VALUES (1, ?, ?, ?, 11, 0, 0, 0, ?, ?, ?, ?, ?)',
        ),
      };
    });
    scratch.run(() => db.exec('BEGIN'));
    const allTags = new Set<string>();
    let index = 0;
    for await (const card of cards) {
      const fields = meta.fields.map((name) => ankiField(fieldValue(card, name)));
      const tags = cardTags(card, meta);
      for (const tag of tags) allTags.add(tag);
      const sortText = sortField(meta.fields[0] === undefined ? '' : fieldValue(card, meta.fields[0]));
      const id = nowMs + index;
      scratch.run(() => {
        insertNote.run(
          id,
          cardGuid(card, meta),
          ids.model,
          mod,
          tags.length === 0 ? '' : ` ${tags.join(' ')} `,
          fields.join('\x1f'),
          sortText,
          fieldChecksum(sortText),
        );
        insertCard.run(id, id, ids.deck, mod, index + 1);
      });
      index++;
    }
    scratch.run(() => {
      insertCol.run(
        mod,
        nowMs,
        nowMs,
        JSON.stringify(collectionConf(ids.model, index + 1)),
        JSON.stringify({ [ids.model]: modelJson(meta, ids.model, ids.deck, mod) }),
        JSON.stringify(decksJson(meta.deck, ids.deck, mod)),
        JSON.stringify(DECK_CONFIG),
        JSON.stringify(Object.fromEntries([...allTags].map((tag) => [tag, -1]))),
      );
      db.exec('COMMIT');
    });
    return index;
  } finally {
    db.close();
  }
}

/** Stable ids from names: 2^40 + 48 bits of SHA-256, positive, far from Anki's id 1, within 2^53. */
function stableId(...parts: string[]): number {
  return 2 ** 40 + createHash('sha256').update(JSON.stringify(parts)).digest().readUIntBE(0, 6);
}

/** Anki's own "Default" deck keeps id 1: a second deck with that name could not coexist with it. */
function deckId(name: string): number {
  return name.trim().toLowerCase() === 'default' ? 1 : stableId('deck', name);
}

function modelId(meta: DeckMeta): number {
  return stableId('notetype', meta.noteType, ...meta.fields);
}

/**
 * The first field as Anki sorts and compares it (its HTML stripped and entities decoded). The
 * field is `ankiField(text)`, whose only tags are the <br> of line breaks: that is the text
 * trimmed, line breaks dropped and tabs made spaces.
 */
function sortField(text: string): string {
  return text
    .trim()
    .replace(/\r\n|\r|\n/g, '')
    .replace(/\t/g, ' ');
}

/** Anki's duplicate-check checksum: the first 8 hex digits of the SHA-1 of the stripped first field. */
function fieldChecksum(text: string): number {
  return Number.parseInt(hash('sha1', text, 'hex').slice(0, 8), 16);
}

function collectionConf(model: number, nextPos: number): Record<string, unknown> {
  return {
    activeDecks: [1],
    curDeck: 1,
    newSpread: 0,
    collapseTime: 1200,
    timeLim: 0,
    estTimes: true,
    dueCounts: true,
    curModel: String(model),
    nextPos,
    sortType: 'noteFld',
    sortBackwards: false,
    addToCur: true,
  };
}

function decksJson(name: string, id: number, mod: number): Record<string, unknown> {
  const deck = (deckName: string, deckId: number, usn: number) => ({
    id: deckId,
    name: deckName,
    desc: '',
    mod,
    usn,
    dyn: 0,
    conf: 1,
    collapsed: false,
    browserCollapsed: false,
    extendNew: 10,
    extendRev: 50,
    newToday: [0, 0],
    revToday: [0, 0],
    lrnToday: [0, 0],
    timeToday: [0, 0],
  });
  const decks: Record<string, unknown> = { '1': deck('Default', 1, 0) };
  if (id !== 1) decks[String(id)] = deck(name, id, -1);
  return decks;
}

/** Anki's default options group, which both decks use. */
const DECK_CONFIG = {
  '1': {
    id: 1,
    name: 'Default',
    mod: 0,
    usn: 0,
    maxTaken: 60,
    autoplay: true,
    timer: 0,
    replayq: true,
    dyn: false,
    new: { bury: false, delays: [1, 10], initialFactor: 2500, ints: [1, 4, 0], order: 1, perDay: 20 },
    lapse: { delays: [10], leechAction: 1, leechFails: 8, minInt: 1, mult: 0 },
    rev: { bury: false, ease4: 1.3, ivlFct: 1, maxIvl: 36500, perDay: 200, hardFactor: 1.2 },
  },
};

/** The note type of note-type.ts as a schema 11 model. */
function modelJson(meta: DeckMeta, id: number, deck: number, mod: number): Record<string, unknown> {
  const template = cardTemplate(meta.fields);
  return {
    id,
    name: meta.noteType,
    type: 0,
    mod,
    usn: -1,
    sortf: 0,
    did: deck,
    tmpls: [
      {
        name: template.name,
        ord: 0,
        qfmt: template.front,
        afmt: template.back,
        bqfmt: '',
        bafmt: '',
        did: null,
      },
    ],
    flds: meta.fields.map((name, ord) => ({
      name,
      ord,
      sticky: false,
      rtl: false,
      font: 'Arial',
      size: 20,
      media: [],
    })),
    css: NOTE_TYPE_CSS,
    latexPre:
      '\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n\\usepackage[utf8]{inputenc}\n' +
      '\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n\\setlength{\\parindent}{0in}\n\\begin{document}\n',
    latexPost: '\\end{document}',
    latexsvg: false,
    req: [[0, 'all', [0]]],
    tags: [],
    vers: [],
  };
}

/** Anki's schema 11 tables and indexes, as Anki 2.1 created them. */
const SCHEMA = `
CREATE TABLE col (
  id integer PRIMARY KEY, crt integer NOT NULL, mod integer NOT NULL, scm integer NOT NULL,
  ver integer NOT NULL, dty integer NOT NULL, usn integer NOT NULL, ls integer NOT NULL,
  conf text NOT NULL, models text NOT NULL, decks text NOT NULL, dconf text NOT NULL, tags text NOT NULL
);
CREATE TABLE notes (
  id integer PRIMARY KEY, guid text NOT NULL, mid integer NOT NULL, mod integer NOT NULL,
  usn integer NOT NULL, tags text NOT NULL, flds text NOT NULL, sfld integer NOT NULL,
  csum integer NOT NULL, flags integer NOT NULL, data text NOT NULL
);
CREATE TABLE cards (
  id integer PRIMARY KEY, nid integer NOT NULL, did integer NOT NULL, ord integer NOT NULL,
  mod integer NOT NULL, usn integer NOT NULL, type integer NOT NULL, queue integer NOT NULL,
  due integer NOT NULL, ivl integer NOT NULL, factor integer NOT NULL, reps integer NOT NULL,
  lapses integer NOT NULL, left integer NOT NULL, odue integer NOT NULL, odid integer NOT NULL,
  flags integer NOT NULL, data text NOT NULL
);
CREATE TABLE revlog (
  id integer PRIMARY KEY, cid integer NOT NULL, usn integer NOT NULL, ease integer NOT NULL,
  ivl integer NOT NULL, lastIvl integer NOT NULL, factor integer NOT NULL, time integer NOT NULL,
  type integer NOT NULL
);
CREATE TABLE graves (usn integer NOT NULL, oid integer NOT NULL, type integer NOT NULL);
CREATE INDEX ix_notes_usn ON notes (usn);
CREATE INDEX ix_cards_usn ON cards (usn);
CREATE INDEX ix_revlog_usn ON revlog (usn);
CREATE INDEX ix_cards_nid ON cards (nid);
CREATE INDEX ix_cards_sched ON cards (did, queue, due);
CREATE INDEX ix_revlog_cid ON revlog (cid);
CREATE INDEX ix_notes_csum ON notes (csum);
`;

interface ZipEntry {
  name: string;
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** Deflates entries into one zip as their data arrives; fflate's Zip emits synchronously on push. */
async function* zipStream(entries: ZipEntry[], mtime: Date): AsyncGenerator<Uint8Array> {
  const ready: Uint8Array[] = [];
  let failure: Error | undefined;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else ready.push(chunk);
  });
  const drain = (): Uint8Array[] => {
    if (failure) throw failure;
    return ready.splice(0);
  };
  for (const entry of entries) {
    const file = new ZipDeflate(entry.name, { level: 6 });
    file.mtime = mtime;
    zip.add(file);
    for await (const chunk of entry.data) {
      file.push(chunk);
      yield* drain();
    }
    file.push(new Uint8Array(0), true);
    yield* drain();
  }
  zip.end();
  yield* drain();
}
