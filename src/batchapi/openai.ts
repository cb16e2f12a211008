import { nodeTransport, type Transport, type TransportResponse } from '../client/transport.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { endpointUrl, trimBaseUrl } from '../core/endpoint-url.ts';
import { ExitCode, isProviderError, ProviderError } from '../core/errors.ts';
import { classifyFetchError, classifyHttpError, invalidResponseError } from '../resilience/classify.ts';
import type { BatchApiAdapter, RemoteBatch, RemoteState, RequestLine, ResultLine } from './adapter.ts';

export interface OpenAiBatchApiOptions {
  /** The provider's base URL, /v1 included (as for chat completions). */
  baseUrl: string;
  apiKey: string | undefined;
  /** node:http(s) by default; tests and `--provider mock` pass their own. */
  transport?: Transport;
  /** Each call (request and whole response body) must end within this. */
  timeoutMs: number;
  /** Drives the per-call timeout (default: the system clock). */
  clock?: Clock;
}

/** The endpoint every request line targets; the batch's `endpoint` must match the lines' `url`. */
const CHAT_ENDPOINT = '/v1/chat/completions';

/** How many list pages findUpload / findBatch read before giving up: a crash's leftovers are recent. */
const MAX_FILE_PAGES = 3;
const MAX_BATCH_PAGES = 10;

/**
 * How a provider says a submission would exceed what it lets wait in its queue. OpenAI sends it as
 * a 429 on create or as a batch that fails validation with this text in `errors`; both mean "wait
 * for earlier batches, then submit", never "the request is wrong".
 */
export const ENQUEUED_LIMIT_PATTERN = /enqueued token limit|token_limit_exceeded/i;

/** True for the error `create` throws when the provider's enqueued token limit is reached. */
export function isEnqueuedLimitError(e: unknown): boolean {
  return isProviderError(e) && e.kind === 'rate_limit' && ENQUEUED_LIMIT_PATTERN.test(e.message);
}

const remoteStates: ReadonlySet<string> = new Set<RemoteState>([
  'validating',
  'in_progress',
  'finalizing',
  'completed',
  'failed',
  'expired',
  'cancelling',
  'cancelled',
]);

type Json = Record<string, unknown>;

function asRecord(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** One line of the JSONL file OpenAI's batch API reads. */
export function requestLineJson(line: RequestLine): string {
  return JSON.stringify({ custom_id: line.customId, method: 'POST', url: CHAT_ENDPOINT, body: line.body });
}

/** Maps OpenAI's Batch object; anything that is not one is an invalid response, not a crash later. */
export function toRemoteBatch(value: unknown): RemoteBatch {
  const b = asRecord(value);
  const id = text(b?.['id']);
  const state = b?.['status'];
  if (!b || id === undefined || typeof state !== 'string' || !remoteStates.has(state)) {
    throw invalidResponseError(
      `expected a batch object with an id and a known status, got ${JSON.stringify(value)?.slice(0, 120)}`,
    );
  }
  const rc = asRecord(b['request_counts']);
  const errorData = asRecord(b['errors'])?.['data'];
  const messages = Array.isArray(errorData)
    ? errorData.map((d) => text(asRecord(d)?.['message'])).filter((m): m is string => m !== undefined)
    : [];
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(asRecord(b['metadata']) ?? {})) {
    if (typeof v === 'string') metadata[k] = v;
  }
  const created = b['created_at'];
  return {
    id,
    state: state as RemoteState,
    counts: {
      total: count(rc?.['total']),
      completed: count(rc?.['completed']),
      failed: count(rc?.['failed']),
    },
    outputFileId: text(b['output_file_id']),
    errorFileId: text(b['error_file_id']),
    errors: messages.length > 0 ? messages.join('; ') : undefined,
    metadata,
    createdAt: typeof created === 'number' && Number.isFinite(created) ? created : undefined,
  };
}

/**
 * Parses an output or error file. A line is readable when it is a JSON object with a custom_id;
 * anything else (a cut-off last line, garbage) is skipped and counted, never guessed at.
 */
export function parseResultLines(content: string): { lines: ResultLine[]; unreadable: number } {
  const lines: ResultLine[] = [];
  let unreadable = 0;
  for (const raw of content.split('\n')) {
    if (raw.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      unreadable++;
      continue;
    }
    const o = asRecord(parsed);
    const customId = text(o?.['custom_id']);
    if (!o || customId === undefined) {
      unreadable++;
      continue;
    }
    const response = asRecord(o['response']);
    const status = response?.['status_code'];
    const statusCode = typeof status === 'number' && Number.isInteger(status) ? status : 0;
    const body = response?.['body'];
    lines.push({ customId, statusCode, body, error: lineError(o['error'], statusCode, body) });
  }
  return { lines, unreadable };
}

/** The line's own error, else (for a non-200 line) the error in its response body, else its status. */
function lineError(
  error: unknown,
  statusCode: number,
  body: unknown,
): { code: string; message: string } | undefined {
  const own = asRecord(error);
  if (own) {
    return {
      code: text(own['code']) ?? (statusCode ? `http_${statusCode}` : 'error'),
      message: text(own['message']) ?? 'no message',
    };
  }
  if (statusCode === 200) return undefined;
  const inner = asRecord(asRecord(body)?.['error']);
  return {
    code: text(inner?.['code']) ?? (statusCode ? `http_${statusCode}` : 'no_response'),
    message:
      text(inner?.['message']) ??
      (statusCode ? `the request got HTTP ${statusCode}` : 'the line has no response and no error'),
  };
}

/** A call's abort signal: the caller's, or the timeout on the injected clock. */
function callDeadline(clock: Clock, timeoutMs: number, outer: AbortSignal) {
  const controller = new AbortController();
  let timedOut = false;
  const cancelTimer = clock.timer(timeoutMs, () => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
  });
  const onAbort = (): void => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    done() {
      cancelTimer();
      outer.removeEventListener('abort', onAbort);
    },
  };
}

interface Call {
  method: 'GET' | 'POST';
  /** Path under the base URL, e.g. `batches/batch_1/cancel`. */
  path: string;
  query?: Record<string, string | undefined>;
  /** JSON, or a ready body with its content type (multipart). */
  json?: unknown;
  raw?: { body: readonly Uint8Array[]; contentType: string };
  /** A 404 here means the provider has no batch API (a collection endpoint), not a missing id. */
  collection: boolean;
}

/**
 * OpenAI's batch API (`/files` + `/batches`), also spoken by Groq, Together and others. Every call
 * has its own timeout; every failure is a typed ProviderError classified as the chat client does,
 * with two batch-specific meanings: a 404 on a collection endpoint (the provider has no batch
 * API, exit 2) and a 429 naming the enqueued token limit (see isEnqueuedLimitError).
 */
export function openaiBatchApi(o: OpenAiBatchApiOptions): BatchApiAdapter {
  const send = o.transport ?? nodeTransport();
  const clock = o.clock ?? systemClock;
  const base = trimBaseUrl(o.baseUrl);
  const describe = `OpenAI batch API at ${base}`;
  const auth: Record<string, string> = o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {};

  function urlOf(call: Call): string {
    const url = new URL(endpointUrl(o.baseUrl, call.path));
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    return url.toString();
  }

  async function request(call: Call, signal: AbortSignal): Promise<string> {
    const deadline = callDeadline(clock, o.timeoutMs, signal);
    const headers: Record<string, string> = { accept: 'application/json', 'x-title': 'flashcards', ...auth };
    let body: string | readonly Uint8Array[] | undefined;
    if (call.raw) {
      headers['content-type'] = call.raw.contentType;
      body = call.raw.body;
    } else if (call.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(call.json);
    }
    const what = `${call.method} /${call.path}`;
    try {
      const response: TransportResponse = await send(urlOf(call), {
        method: call.method,
        headers,
        body,
        signal: deadline.signal,
      });
      const answer = await response.text();
      if (response.status >= 200 && response.status <= 299) return answer;
      throw httpError(response, answer, what, call.collection);
    } catch (e) {
      if (isProviderError(e)) throw e;
      throw classifyFetchError(e, {
        timedOut: deadline.timedOut,
        timeoutMs: o.timeoutMs,
        cancelled: signal.aborted && !deadline.timedOut,
      });
    } finally {
      deadline.done();
    }
  }

  function httpError(
    response: TransportResponse,
    body: string,
    what: string,
    collection: boolean,
  ): ProviderError {
    const e = classifyHttpError(response.status, body, response.headers, clock.now(), o.apiKey);
    // "No such File object" on create is about the id sent, not about the endpoint.
    if (response.status === 404 && collection && !/\bno such\b/i.test(e.message)) {
      return new ProviderError(
        'bad_request',
        `${describe}: ${what} answered 404: the provider has no batch API`,
        {
          retryable: false,
          status: 404,
          exitCode: ExitCode.usage,
          hint: 'run without the batch API (synchronous requests), or check the base URL',
          cause: e,
        },
      );
    }
    if (response.status === 429 && ENQUEUED_LIMIT_PATTERN.test(e.message)) {
      return new ProviderError('rate_limit', `${what}: enqueued token limit reached: ${e.message}`, {
        retryable: true,
        status: 429,
        retryAfterMs: e.retryAfterMs,
        rateLimit: e.rateLimit,
        hint: 'the provider holds too many queued tokens: submit again once earlier batches have finished',
        cause: e,
      });
    }
    return new ProviderError(e.kind, `${what}: ${e.message}`, {
      retryable: e.retryable,
      status: e.status,
      retryAfterMs: e.retryAfterMs,
      rateLimit: e.rateLimit,
      hint: e.hint,
      exitCode: e.exitCode,
      cause: e,
    });
  }

  async function json(call: Call, signal: AbortSignal): Promise<Json> {
    const answer = await request(call, signal);
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer);
    } catch {
      parsed = undefined;
    }
    const record = asRecord(parsed);
    if (!record) {
      throw invalidResponseError(
        `${call.method} /${call.path} answered 2xx without a JSON object (${answer.length} bytes)`,
      );
    }
    return record;
  }

  /** Reads list pages (newest first) until `match` finds something, the list ends or `maxPages` is read. */
  async function findInList<T>(
    path: string,
    query: Record<string, string>,
    maxPages: number,
    match: (item: Json) => T | undefined,
    signal: AbortSignal,
  ): Promise<T | undefined> {
    let after: string | undefined;
    for (let page = 0; page < maxPages; page++) {
      const list = await json({ method: 'GET', path, query: { ...query, after }, collection: true }, signal);
      const data = Array.isArray(list['data']) ? list['data'] : [];
      for (const item of data) {
        const record = asRecord(item);
        const found = record ? match(record) : undefined;
        if (found !== undefined) return found;
      }
      const last = text(list['last_id']) ?? text(asRecord(data.at(-1))?.['id']);
      if (list['has_more'] !== true || last === undefined) return undefined;
      after = last;
    }
    return undefined;
  }

  return {
    describe,

    async upload(fileName, lines, signal) {
      let jsonl = '';
      for (const line of lines) jsonl += `${requestLineJson(line)}\n`;
      // Node's own multipart encoder (undici's), so quoting and boundaries are right by construction.
      const form = new FormData();
      form.append('purpose', 'batch');
      form.append('file', new Blob([jsonl], { type: 'application/jsonl' }), fileName);
      const encoded = new Response(form);
      const contentType = encoded.headers.get('content-type') ?? 'multipart/form-data';
      const bytes = new Uint8Array(await encoded.arrayBuffer());
      const file = await json(
        { method: 'POST', path: 'files', raw: { body: [bytes], contentType }, collection: true },
        signal,
      );
      const id = text(file['id']);
      if (id === undefined) throw invalidResponseError('POST /files answered without a file id');
      return id;
    },

    findUpload(fileName, signal) {
      return findInList(
        'files',
        { purpose: 'batch' },
        MAX_FILE_PAGES,
        (f) => (f['filename'] === fileName ? text(f['id']) : undefined),
        signal,
      );
    },

    async create(fileId, metadata, signal) {
      const body = { input_file_id: fileId, endpoint: CHAT_ENDPOINT, completion_window: '24h', metadata };
      return toRemoteBatch(
        await json({ method: 'POST', path: 'batches', json: body, collection: true }, signal),
      );
    },

    findBatch(tag, signal) {
      return findInList(
        'batches',
        { limit: '100' },
        MAX_BATCH_PAGES,
        (b) => (asRecord(b['metadata'])?.['flashcards_tag'] === tag ? toRemoteBatch(b) : undefined),
        signal,
      );
    },

    async status(id, signal) {
      const path = `batches/${encodeURIComponent(id)}`;
      return toRemoteBatch(await json({ method: 'GET', path, collection: false }, signal));
    },

    download(fileId, signal) {
      return request(
        { method: 'GET', path: `files/${encodeURIComponent(fileId)}/content`, collection: false },
        signal,
      );
    },

    parseResults: parseResultLines,

    async cancel(id, signal) {
      const path = `batches/${encodeURIComponent(id)}/cancel`;
      return toRemoteBatch(await json({ method: 'POST', path, collection: false }, signal));
    },
  };
}
