import { requestDeadline } from '../client/deadline.ts';
import { type ErrorKind, ExitCode, errorCode, FlashcardsError, oneLine, usageError } from '../core/errors.ts';

/**
 * The HTTP side of AnkiConnect (https://git.foosoft.net/alex/anki-connect): one POST
 * `{action, version: 6, params}` per action, answered `{result, error}`, a timeout per request,
 * and every failure a one-line FlashcardsError that says how far the push got. What to send, and
 * in which order, is anki-connect.ts's part.
 */

export const DEFAULT_ANKI_CONNECT_URL = 'http://127.0.0.1:8765';
/** AnkiConnect's API version whose answers are `{result, error}`. */
export const ANKI_CONNECT_VERSION = 6;

const HINT_START_ANKI = 'start Anki with the AnkiConnect add-on (code 2055492159), or pass --anki-url';

export interface ConnectionOptions {
  /** AnkiConnect's address, e.g. http://127.0.0.1:8765. */
  url: string;
  /** Default: global fetch. */
  fetch?: typeof fetch;
  /** Per request, including reading the answer (default 30 s). */
  timeoutMs?: number;
  /** AnkiConnect's `apiKey` setting, when the user set one. */
  apiKey?: string;
  /** Stops the push between requests and aborts the one in flight. */
  signal?: AbortSignal;
}

/** How far the push got, read when an error is made: "after 10 notes were added" and the rerun hint. */
export interface PushState {
  readonly batches: number;
  readonly added: number;
}

/** One AnkiConnect action's outcome: a transport failure throws instead. */
export type Outcome = { ok: true; result: unknown } | { ok: false; error: string };

export interface Connection {
  /** Sends one action; AnkiConnect's own error comes back as a value. */
  request(action: string, params?: Record<string, unknown>): Promise<Outcome>;
  /** Sends one action; AnkiConnect's error throws, naming the action. */
  call(action: string, params?: Record<string, unknown>): Promise<unknown>;
}

/**
 * Checks the URL and the timeout (usage errors, exit code 2), then returns the connection. A
 * failure before any answer says Anki cannot be reached; one after, that it stopped answering.
 */
export function connect(opts: ConnectionOptions, state: PushState): Connection {
  const timeoutMs = checkConnectOptions(opts);
  const send = opts.fetch ?? fetch;
  const url = opts.url;
  let reached = false;

  const request = async (action: string, params?: Record<string, unknown>): Promise<Outcome> => {
    const { signal } = opts;
    if (signal?.aborted) throw cancelled(state);
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
      if (signal?.aborted && !deadline.timedOut) throw cancelled(state, e);
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
        `AnkiConnect at ${url} stopped answering during ${action} (${reason})${added(state, ', ')}`,
        { hint: rerunHint(state), exitCode: ExitCode.aborted, cause: e },
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
        `AnkiConnect ${action} failed: ${oneLine(outcome.error)}${added(state, ', ')}`,
        {
          hint: action === 'version' ? undefined : rerunHint(state),
          exitCode: ExitCode.aborted,
        },
      );
    },
  };
}

/** AnkiConnect's API version; one below 6 cannot be spoken to (exit code 3). */
export async function checkVersion(anki: Connection, url: string): Promise<number> {
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

/** Validates the URL and timeout; returns the timeout in ms. */
function checkConnectOptions(opts: ConnectionOptions): number {
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

function cancelled(state: PushState, cause?: unknown): FlashcardsError {
  return new FlashcardsError('cancelled', `push to Anki cancelled${added(state, ' ')}`, {
    hint: rerunHint(state),
    cause,
  });
}

/** An answer of the right envelope whose result is not what `action` returns. */
export function invalidAnswer(action: string, expected: string, got: unknown): FlashcardsError {
  return new FlashcardsError(
    'invalid_response',
    `AnkiConnect answered ${action} with ${excerpt(JSON.stringify(got) ?? String(got))}, ${expected}`,
    { exitCode: ExitCode.aborted },
  );
}

/** The result of deckNames, modelNames, modelFieldNames. */
export function stringList(value: unknown, action: string): string[] {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  throw invalidAnswer(action, 'expected a list of names', value);
}

/** The live state for messages, e.g. ", after 10 notes were added"; empty before the first batch. */
function added(state: PushState, lead: string): string {
  if (state.batches === 0) return '';
  return `${lead}after ${state.added} note${state.added === 1 ? ' was' : 's were'} added`;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function rerunHint(state: PushState): string | undefined {
  return state.added > 0 ? 'run the push again: notes already in the deck are skipped' : undefined;
}

function excerpt(text: string): string {
  const line = oneLine(text);
  return line === '' ? '(empty)' : JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}
