import { FlashcardsError, usageError } from '../core/errors.ts';
import { ankiField } from './anki.ts';
import {
  type Connection,
  type ConnectionOptions,
  checkVersion,
  connect,
  invalidAnswer,
  stringList,
} from './anki-connect-client.ts';
import { fieldValue } from './columns.ts';
import { ankiFieldsProblem } from './field-names.ts';
import { cardTemplate, NOTE_TYPE_CSS } from './note-type.ts';
import { cardTags } from './tags.ts';
import type { CardRecord, DeckMeta } from './types.ts';

/**
 * Pushes notes into a running Anki through the AnkiConnect add-on: the deck and the note type
 * when missing, then the cards in batches (canAddNotes, then addNotes). Talking HTTP to AnkiConnect
 * is anki-connect-client.ts's part.
 *
 * Exit codes of the errors thrown here and there:
 * - 3 (aborted): Anki cannot be reached, AnkiConnect is too old, answers something that is not
 *   AnkiConnect, or reports an error. Nothing on the user's command line is wrong; the push stopped.
 * - 2 (usage): the options cannot work: a bad batch size or timeout, unusable field names, or an
 *   existing note type whose fields differ from the cards'. The command has to change.
 * - 130 (interrupted): `signal` fired.
 * Notes that Anki refuses one by one do not throw: they are counted in `PushResult.failed`, and the
 * caller decides the exit code (1, items failed, when `failed > 0`).
 *
 * Every card read is counted exactly once: `added + duplicates + repeated + failed` is the number
 * of cards sent.
 */

/** Failure reasons kept in `PushResult.failures`; `failed` counts them all. */
const MAX_FAILURES_KEPT = 20;

export interface PushProgress {
  /** Batches read so far. */
  batches: number;
  /** Cards read so far. */
  sent: number;
  added: number;
  /** Cards not added because the deck already had a note with the same first field (`duplicates`). */
  skipped: number;
  /** Cards not sent because an earlier card of this push has the same first field. */
  repeated: number;
  failed: number;
}

export interface AnkiConnectOptions extends ConnectionOptions {
  /**
   * Cards per canAddNotes/addNotes round trip (default 100). Only one batch of cards is held in
   * memory, plus the first field of each card sent so far (to recognise repeats).
   */
  batchSize?: number;
  /** Called after each batch with running totals. */
  onBatch?: (progress: PushProgress) => void;
}

export interface PushFailure {
  term: string;
  key: string;
  reason: string;
}

export interface PushResult {
  added: number;
  /**
   * Cards not added because the deck already had a note with the same first field before this
   * push (Anki's duplicate check, scoped to the deck).
   */
  duplicates: number;
  /**
   * Cards not sent because an earlier card of this push, in any batch, has the same first field:
   * Anki would take them for duplicates of that card. Not in `duplicates`.
   */
  repeated: number;
  /** Cards Anki refused, or that could not be sent (an empty first field); see `failures`. */
  failed: number;
  /** Why notes failed: the first 20 failures. */
  failures: PushFailure[];
  batches: number;
  createdDeck: boolean;
  createdModel: boolean;
}

/** A note as AnkiConnect's addNote/addNotes/canAddNotes take it. */
export interface AnkiNote {
  deckName: string;
  modelName: string;
  fields: Record<string, string>;
  tags: string[];
  options: { allowDuplicate: boolean; duplicateScope: 'deck' | 'collection' };
}

export async function pushToAnkiConnect(
  cards: Iterable<CardRecord> | AsyncIterable<CardRecord>,
  meta: DeckMeta,
  opts: AnkiConnectOptions,
): Promise<PushResult> {
  const batchSize = opts.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw usageError(`AnkiConnect batch size must be an integer >= 1, got ${batchSize}`);
  }
  const result: PushResult = {
    added: 0,
    duplicates: 0,
    repeated: 0,
    failed: 0,
    failures: [],
    batches: 0,
    createdDeck: false,
    createdModel: false,
  };
  const anki = connect(opts, result);
  checkFieldNames(meta);

  await checkVersion(anki, opts.url);
  result.createdDeck = await ensureDeck(anki, meta.deck);
  result.createdModel = await ensureModel(anki, meta);

  let sent = 0;
  let batch: CardRecord[] = [];
  const seen = new Set<string>();
  const flush = async (): Promise<void> => {
    result.batches++;
    sent += batch.length;
    await pushBatch(anki, batch, meta, seen, result);
    batch = [];
    opts.onBatch?.({
      batches: result.batches,
      sent,
      added: result.added,
      skipped: result.duplicates,
      repeated: result.repeated,
      failed: result.failed,
    });
  };
  for await (const card of cards) {
    batch.push(card);
    if (batch.length >= batchSize) await flush();
  }
  if (batch.length > 0) await flush();
  return result;
}

/**
 * Asks AnkiConnect for its API version and checks it is >= 6: a pre-flight check before work
 * whose result would be pushed. Throws the same errors as `pushToAnkiConnect` (Anki unreachable:
 * exit code 3).
 */
export async function ankiConnectVersion(
  url: string,
  opts: Omit<ConnectionOptions, 'url'> = {},
): Promise<number> {
  return checkVersion(connect({ ...opts, url }, { batches: 0, added: 0 }), url);
}

/** The note AnkiConnect receives for a card: fields in note type order as HTML, tags joined from both. */
export function ankiNote(card: CardRecord, meta: DeckMeta): AnkiNote {
  const fields: Record<string, string> = {};
  for (const name of meta.fields) fields[name] = ankiField(fieldValue(card, name));
  return {
    deckName: meta.deck,
    modelName: meta.noteType,
    fields,
    tags: cardTags(card, meta),
    options: { allowDuplicate: false, duplicateScope: 'deck' },
  };
}

/** createModel's parameters for the note type of note-type.ts, created when it is missing. */
export function noteTypeDefinition(meta: DeckMeta): Record<string, unknown> {
  const template = cardTemplate(meta.fields);
  return {
    modelName: meta.noteType,
    inOrderFields: meta.fields,
    isCloze: false,
    css: NOTE_TYPE_CSS,
    cardTemplates: [{ Name: template.name, Front: template.front, Back: template.back }],
  };
}

/** Creates the deck when Anki has no deck of that name (Anki compares deck names ignoring case). */
async function ensureDeck(anki: Connection, deck: string): Promise<boolean> {
  const names = stringList(await anki.call('deckNames'), 'deckNames');
  const wanted = deck.toLowerCase();
  if (names.some((name) => name.toLowerCase() === wanted)) return false;
  await anki.call('createDeck', { deck });
  return true;
}

/** Creates the note type when missing; an existing one must have exactly the cards' fields. */
async function ensureModel(anki: Connection, meta: DeckMeta): Promise<boolean> {
  const names = stringList(await anki.call('modelNames'), 'modelNames');
  if (!names.includes(meta.noteType)) {
    await anki.call('createModel', noteTypeDefinition(meta));
    return true;
  }
  const fields = stringList(
    await anki.call('modelFieldNames', { modelName: meta.noteType }),
    'modelFieldNames',
  );
  if (fields.length !== meta.fields.length || fields.some((f, i) => f !== meta.fields[i])) {
    throw new FlashcardsError(
      'config',
      `note type "${meta.noteType}" in Anki has the fields ${fieldList(fields)}, the cards have ${fieldList(meta.fields)}`,
      {
        hint: 'pick another note type name with --note-type (it is created with the cards’ fields), or change the fields to match',
      },
    );
  }
  return false;
}

/**
 * One batch: local checks, canAddNotes to skip notes already in the deck, addNotes for the rest.
 * Notes with an empty first field fail locally (Anki would refuse them), and a first field in
 * `seen` (sent earlier in this push) counts as repeated and is not sent: canAddNotes would call it
 * a duplicate of this push's own note, or, within one batch, not notice it at all.
 */
async function pushBatch(
  anki: Connection,
  cards: CardRecord[],
  meta: DeckMeta,
  seen: Set<string>,
  result: PushResult,
): Promise<void> {
  const firstField = meta.fields[0] ?? '';
  const candidates: Array<{ card: CardRecord; note: AnkiNote }> = [];
  for (const card of cards) {
    const note = ankiNote(card, meta);
    const first = note.fields[firstField] ?? '';
    if (first === '') fail(result, card, `the first field (${firstField}) is empty`);
    else if (seen.has(first)) result.repeated++;
    else {
      seen.add(first);
      candidates.push({ card, note });
    }
  }
  if (candidates.length === 0) return;

  const canAdd = await anki.call('canAddNotes', { notes: candidates.map((c) => c.note) });
  if (!Array.isArray(canAdd) || canAdd.length !== candidates.length) {
    throw invalidAnswer('canAddNotes', `expected ${candidates.length} booleans`, canAdd);
  }
  const addable = candidates.filter((_, i) => canAdd[i] === true);
  result.duplicates += candidates.length - addable.length;
  if (addable.length === 0) return;

  const outcome = await anki.request('addNotes', { notes: addable.map((c) => c.note) });
  if (outcome.ok) {
    const ids = outcome.result;
    if (!Array.isArray(ids) || ids.length !== addable.length) {
      throw invalidAnswer('addNotes', `expected ${addable.length} note ids`, ids);
    }
    addable.forEach(({ card }, i) => {
      if (typeof ids[i] === 'number') result.added++;
      else fail(result, card, 'Anki did not add the note (addNotes answered null)');
    });
    return;
  }
  // AnkiConnect since 2023 rolls the whole batch back when one note fails and answers an error
  // listing the reasons; canAddNotes just passed, so the collection is fine: add one by one.
  for (const { card, note } of addable) {
    const one = await anki.request('addNote', { note });
    if (one.ok) result.added++;
    else fail(result, card, one.error);
  }
}

function fail(result: PushResult, card: CardRecord, reason: string): void {
  result.failed++;
  if (result.failures.length < MAX_FAILURES_KEPT)
    result.failures.push({ term: card.term, key: card.key, reason });
}

/** Anki refuses these field names, and the card template could not name them. */
function checkFieldNames(meta: DeckMeta): void {
  const problem = ankiFieldsProblem(meta.fields);
  if (problem) throw usageError(`cannot send the cards to Anki: ${problem}`);
}

function fieldList(fields: string[]): string {
  return fields.length === 0 ? '(none)' : fields.join(', ');
}
