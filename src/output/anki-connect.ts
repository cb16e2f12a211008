import { requestDeadline } from '../client/deadline.ts';
import { type ErrorKind, ExitCode, errorCode, FlashcardsError, oneLine, usageError } from '../core/errors.ts';
import { ankiField } from './anki.ts';
import { fieldValue } from './columns.ts';
import { ankiFieldsProblem } from './field-names.ts';
import { cardTemplate, NOTE_TYPE_CSS } from './note-type.ts';
import { cardTags } from './tags.ts';
import type { CardRecord, DeckMeta } from './types.ts';

/**
 * Pushes notes into a running Anki through the AnkiConnect add-on
 * (https://git.foosoft.net/alex/anki-connect): POST `{action, version: 6, params}`, answer
 * `{result, error}`.
 *
 * Exit codes of the errors thrown here:
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

export const DEFAULT_ANKI_CONNECT_URL = 'http://127.0.0.1:8765';
/** AnkiConnect's API version whose answers are `{result, error}`. */
export const ANKI_CONNECT_VERSION = 6;

const HINT_START_ANKI = 'start Anki with the AnkiConnect add-on (code 2055492159), or pass --anki-url';
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

export interface AnkiConnectOptions {
  /** AnkiConnect's address, e.g. http://127.0.0.1:8765. */
  url: string;
  /**
   * Cards per canAddNotes/addNotes round trip (default 100). Only one batch of cards is held in
   * memory, plus the first field of each card sent so far (to recognise repeats).
   */
  batchSize?: number;
  /** Default: global fetch. */
  fetch?: typeof fetch;
  /** Per request, including reading the answer (default 30 s). */
  timeoutMs?: number;
  /** AnkiConnect's `apiKey` setting, when the user set one. */
  apiKey?: string;
  /** Stops the push between requests and aborts the one in flight. */
  signal?: AbortSignal;
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

/** One AnkiConnect action's outcome: a transport failure throws instead. */
type Outcome = { ok: true; result: unknown } | { ok: false; error: string };

interface Connection {
  /** Sends one action; AnkiConnect's own error comes back as a value. */
  request(action: string, params?: Record<string, unknown>): Promise<Outcome>;
  /** Sends one action; AnkiConnect's error throws, naming the action. */
  call(action: string, params?: Record<string, unknown>): Promise<unknown>;
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
  const timeoutMs = checkConnectOptions(opts);
  checkFieldNames(meta);

  const result = emptyResult();
  const anki = connect(opts, timeoutMs, result);

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
  opts: Pick<AnkiConnectOptions, 'fetch' | 'timeoutMs' | 'apiKey' | 'signal'> = {},
): Promise<number> {
  const all = { ...opts, url };
  return checkVersion(connect(all, checkConnectOptions(all), emptyResult()), url);
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

/** Validates the URL and timeout; returns the timeout in ms. */
function checkConnectOptions(opts: AnkiConnectOptions): number {
  if (!URL.canParse(opts.url) || !/^https?:$/.test(new URL(opts.url).protocol)) {
    throw usageError(
      `the AnkiConnect URL must be an http:// address, got ${JSON.stringify(opts.url)}`,
      `AnkiConnect listens on ${DEFAULT_ANKI_CONNECT_URL} unless its config says otherwise`,
    );
  }
  const timeoutMs = opts.timeoutMs ?? 30_000;
  if (!(timeoutMs > 0)) throw usageError(`AnkiConnect timeout must be > 0 ms, got ${timeoutMs}`);
  return timeoutMs;
}

function emptyResult(): PushResult {
  return {
    added: 0,
    duplicates: 0,
    repeated: 0,
    failed: 0,
    failures: [],
    batches: 0,
    createdDeck: false,
    createdModel: false,
  };
}

async function checkVersion(anki: Connection, url: string): Promise<number> {
  const version = await anki.call('version');
  if (typeof version !== 'number' || version < ANKI_CONNECT_VERSION) {
    throw new FlashcardsError(
      'config',
      `AnkiConnect at ${url} speaks API version ${JSON.stringify(version)}, flashcards needs >= ${ANKI_CONNECT_VERSION}`,
      {
        hint: 'update the AnkiConnect add-on in Anki (Tools > Add-ons > Check for Updates)',
        exitCode: ExitCode.aborted,
      },
    );
  }
  return version;
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

/** The HTTP side: one POST per action, a timeout per request, every failure a one-line FlashcardsError. */
function connect(opts: AnkiConnectOptions, timeoutMs: number, progress: PushResult): Connection {
  const send = opts.fetch ?? fetch;
  const url = opts.url;
  let reached = false;

  const request = async (action: string, params?: Record<string, unknown>): Promise<Outcome> => {
    const { signal } = opts;
    if (signal?.aborted) throw cancelled(progress);
    const body = JSON.stringify({
      action,
      version: ANKI_CONNECT_VERSION,
      ...(opts.apiKey === undefined ? {} : { key: opts.apiKey }),
      ...(params === undefined ? {} : { params }),
    });
    const deadline = requestDeadline(timeoutMs, `no answer within ${seconds(timeoutMs)}`, signal);
    let status: number;
    let text: string;
    try {
      const response = await send(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: deadline.signal,
      });
      status = response.status;
      text = await response.text();
    } catch (e) {
      if (signal?.aborted && !deadline.timedOut) throw cancelled(progress, e);
      const reason = deadline.timedOut ? `no answer within ${seconds(timeoutMs)}` : networkReason(e);
      const kind: ErrorKind = deadline.timedOut ? 'timeout' : 'network';
      if (!reached) {
        throw new FlashcardsError(kind, `cannot reach AnkiConnect at ${url} (${reason})`, {
          hint: HINT_START_ANKI,
          exitCode: ExitCode.aborted,
          cause: e,
        });
      }
      throw new FlashcardsError(
        kind,
        `AnkiConnect at ${url} stopped answering during ${action} (${reason})${added(progress, ', ')}`,
        { hint: rerunHint(progress), exitCode: ExitCode.aborted, cause: e },
      );
    } finally {
      deadline.done();
    }
    reached = true;
    return parseAnswer(url, action, status, text);
  };

  return {
    request,
    async call(action, params) {
      const outcome = await request(action, params);
      if (outcome.ok) return outcome.result;
      throw new FlashcardsError(
        'server',
        `AnkiConnect ${action} failed: ${oneLine(outcome.error)}${added(progress, ', ')}`,
        {
          hint: action === 'version' ? undefined : rerunHint(progress),
          exitCode: ExitCode.aborted,
        },
      );
    },
  };
}

function parseAnswer(url: string, action: string, status: number, text: string): Outcome {
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  // AnkiConnect before API version 5 answers the bare result; only `version` can be read then.
  if (action === 'version' && typeof answer === 'number' && status === 200)
    return { ok: true, result: answer };
  const isEnvelope =
    typeof answer === 'object' &&
    answer !== null &&
    'result' in answer &&
    'error' in answer &&
    status === 200;
  if (!isEnvelope) {
    const what =
      answer === undefined ? 'something that is not JSON' : 'JSON that is not an AnkiConnect answer';
    throw new FlashcardsError(
      'invalid_response',
      `AnkiConnect at ${url} answered ${action} with HTTP ${status} and ${what}: ${excerpt(text)}`,
      { hint: 'is another program using that port? check --anki-url', exitCode: ExitCode.aborted },
    );
  }
  const { result, error } = answer as { result: unknown; error: unknown };
  if (error === null || error === undefined) return { ok: true, result };
  return { ok: false, error: typeof error === 'string' ? error : JSON.stringify(error) };
}

/** "connection refused" and friends, from the error code somewhere in fetch's cause chain. */
function networkReason(e: unknown): string {
  const code = errorCode(e);
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connection timed out';
    default: {
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : '';
      const message = e instanceof Error ? e.message : String(e);
      return oneLine(cause || message) + (code ? ` [${code}]` : '');
    }
  }
}

function cancelled(progress: PushResult, cause?: unknown): FlashcardsError {
  return new FlashcardsError('cancelled', `push to Anki cancelled${added(progress, ' ')}`, {
    hint: rerunHint(progress),
    cause,
  });
}

function invalidAnswer(action: string, expected: string, got: unknown): FlashcardsError {
  return new FlashcardsError(
    'invalid_response',
    `AnkiConnect answered ${action} with ${excerpt(JSON.stringify(got) ?? String(got))}, ${expected}`,
    { exitCode: ExitCode.aborted },
  );
}

function stringList(value: unknown, action: string): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw invalidAnswer(action, 'expected a list of names', value);
}

/** Anki refuses these field names, and the card template could not name them. */
function checkFieldNames(meta: DeckMeta): void {
  const problem = ankiFieldsProblem(meta.fields);
  if (problem) throw usageError(`cannot send the cards to Anki: ${problem}`);
}

/** The live state for messages, e.g. ", after 10 notes were added"; empty before the first batch. */
function added(progress: PushResult, lead: string): string {
  if (progress.batches === 0) return '';
  return `${lead}after ${progress.added} note${progress.added === 1 ? ' was' : 's were'} added`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function rerunHint(progress: PushResult): string | undefined {
  return progress.added > 0 ? 'run the push again: notes already in the deck are skipped' : undefined;
}

function fieldList(fields: string[]): string {
  return fields.length === 0 ? '(none)' : fields.join(', ');
}

function excerpt(text: string): string {
  const line = oneLine(text);
  return line === '' ? '(empty)' : JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}
