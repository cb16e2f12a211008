import type { IncomingMessage, ServerResponse } from 'node:http';
import { tokensForChars } from '../../src/client/chat-client.ts';
import { parseChatRequest } from '../../src/client/mock-fetch.ts';
import type { Clock } from '../../src/core/clock.ts';
import { type Random, seededRandom } from '../../src/core/random.ts';

/** The batch API's knobs, part of MockOptions; all can be changed while running with `server.set()`. */
export interface MockBatchSettings {
  /** Serve /v1/files and /v1/batches (default true); false: 404 there, a provider without a batch API. */
  batchApi?: boolean;
  /**
   * A batch is `validating` when created, `in_progress` after that, `completed` this long after its
   * creation, on the mock's clock (default 0: complete at the first look).
   */
  batchCompleteAfterMs?: number;
  /** Share (0..1) of request lines that go to the error file with a 500 instead of an answer (seeded). */
  batchErrorRate?: number;
  /** Output and error lines in a seeded random order instead of input order. */
  batchShuffle?: boolean;
  /**
   * A batch expires this long after creation when that comes before its completion: the share of
   * lines answered by then (half when batchCompleteAfterMs is 0) is in the output file, the rest
   * in the error file as `batch_expired`. 0 or unset: never.
   */
  batchExpireAfterMs?: number;
  /**
   * POST /batches waits, before creating anything, until `set({ batchHoldCreate: false })`; a request
   * whose client went away is still carried out on release (its reply is lost), as a server would.
   */
  batchHoldCreate?: boolean;
  /**
   * Create answers 429 "Enqueued token limit reached" when the prompt tokens of unfinished batches
   * plus the new one would exceed this. 0 or unset: no limit.
   */
  batchEnqueuedTokenLimit?: number;
}

export interface MockUpload {
  fileId: string;
  fileName: string;
  lines: number;
  customIds: string[];
}

export interface MockBatchCreated {
  id: string;
  inputFileId: string;
  metadata: Record<string, string>;
  /** Request lines in its input file. */
  lines: number;
  /** Their prompt tokens, as the enqueued token limit counts them. */
  promptTokens: number;
  /** When it was created, on the mock's clock (ms). */
  at: number;
}

/** What the batch endpoints saw, for assertions. */
export interface MockBatchLog {
  uploads: MockUpload[];
  batches: MockBatchCreated[];
  /** GET /batches/{id}: which batch, when (ms, mock clock) and the state answered. */
  polls: { id: string; at: number; state: string }[];
  cancels: string[];
  /** Request lines in every batch created so far. */
  linesSubmitted: number;
  /** POST /batches requests waiting for `set({ batchHoldCreate: false })`. */
  heldCreates: number;
  /** Creates refused with 429 for the enqueued token limit. */
  enqueuedRefusals: number;
}

/** What the batch endpoints need from the server they are attached to. */
export interface MockBatchHost {
  clock: Clock;
  /** The live settings object (changed in place by `set()`). */
  settings: Readonly<MockBatchSettings & { seed?: number }>;
  /** How /chat/completions answers this body (no faults, no rate limits): status and JSON body. */
  answer(body: unknown): { status: number; body: unknown };
  /** Something a test may wait on happened. */
  changed(): void;
}

export interface MockBatchReply {
  json(status: number, body: unknown): void;
  text(status: number, body: string): void;
}

export type MockBatchRoute =
  | { op: 'upload' }
  | { op: 'listFiles' }
  | { op: 'file'; id: string }
  | { op: 'content'; id: string }
  | { op: 'create' }
  | { op: 'listBatches' }
  | { op: 'batch'; id: string }
  | { op: 'cancel'; id: string };

interface StoredFile {
  id: string;
  filename: string;
  purpose: string;
  content: string;
  createdAt: number;
}

interface InputLine {
  customId: string;
  body: unknown;
}

interface StoredBatch {
  id: string;
  seq: number;
  inputFileId: string;
  metadata: Record<string, string>;
  lines: InputLine[];
  promptTokens: number;
  createdAt: number;
  /** Why validation failed the batch, if it did. */
  invalid: { code: string; message: string; line: number }[];
  cancelledAt: number | undefined;
  /** Set once the batch reached a final state and its files were written. */
  final:
    | {
        state: string;
        at: number;
        outputFileId?: string;
        errorFileId?: string;
        completed: number;
        failed: number;
      }
    | undefined;
}

const CHAT_ENDPOINT = '/v1/chat/completions';

function errorBody(message: string, code: string | null = null, type = 'invalid_request_error'): unknown {
  return { error: { message, type, param: null, code } };
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

/**
 * OpenAI's batch API on the mock provider: files (multipart upload, list, content) and batches
 * (create, list, retrieve, cancel). Each request line is answered as the mock's /chat/completions
 * would answer it. State moves with the mock's clock and is worked out when someone looks, so a
 * FakeClock drives hours of a batch's life without a timer.
 */
export function createMockBatch(host: MockBatchHost) {
  const { clock, settings } = host;
  const files = new Map<string, StoredFile>();
  const batches = new Map<string, StoredBatch>();
  let fileCounter = 0;
  let batchCounter = 0;
  let lineCounter = 0;
  const held: (() => void)[] = [];
  const log: MockBatchLog = {
    uploads: [],
    batches: [],
    polls: [],
    cancels: [],
    linesSubmitted: 0,
    heldCreates: 0,
    enqueuedRefusals: 0,
  };

  function route(method: string, url: string): MockBatchRoute | undefined {
    if (settings.batchApi === false) return undefined;
    const path = (url.split('?')[0] ?? '').replace(/\/+$/, '');
    const id = (re: RegExp): string | undefined => {
      const m = re.exec(path);
      return m ? decodeURIComponent(m[1] ?? '') : undefined;
    };
    if (/\/files$/.test(path)) return method === 'POST' ? { op: 'upload' } : { op: 'listFiles' };
    if (/\/batches$/.test(path)) return method === 'POST' ? { op: 'create' } : { op: 'listBatches' };
    const content = method === 'GET' ? id(/\/files\/([^/]+)\/content$/) : undefined;
    if (content !== undefined) return { op: 'content', id: content };
    const file = method === 'GET' ? id(/\/files\/([^/]+)$/) : undefined;
    if (file !== undefined) return { op: 'file', id: file };
    const cancel = method === 'POST' ? id(/\/batches\/([^/]+)\/cancel$/) : undefined;
    if (cancel !== undefined) return { op: 'cancel', id: cancel };
    const batch = method === 'GET' ? id(/\/batches\/([^/]+)$/) : undefined;
    if (batch !== undefined) return { op: 'batch', id: batch };
    return undefined;
  }

  function addFile(filename: string, purpose: string, content: string): StoredFile {
    fileCounter++;
    const file = { id: `file-mock-${fileCounter}`, filename, purpose, content, createdAt: clock.now() };
    files.set(file.id, file);
    return file;
  }

  function fileObject(f: StoredFile): unknown {
    return {
      id: f.id,
      object: 'file',
      bytes: Buffer.byteLength(f.content),
      created_at: seconds(f.createdAt),
      filename: f.filename,
      purpose: f.purpose,
    };
  }

  /** A newest-first page after `after` (an id), as OpenAI's list endpoints answer. */
  function page<T extends { id: string }>(items: T[], query: URLSearchParams, defaultLimit: number) {
    const limit = Math.max(1, Number(query.get('limit') ?? defaultLimit) || defaultLimit);
    const after = query.get('after');
    const start = after ? items.findIndex((i) => i.id === after) + 1 : 0;
    const data = start === 0 && after ? [] : items.slice(start, start + limit);
    return {
      object: 'list',
      data,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
      has_more: start + limit < items.length && data.length > 0,
    };
  }

  /** Where a batch is at `now`, writing its output and error files the first time it is final. */
  function stateOf(b: StoredBatch): string {
    if (b.final) return b.final.state;
    const now = clock.now();
    if (b.invalid.length > 0) return finish(b, 'failed', 0, now);
    const completeAfter = settings.batchCompleteAfterMs ?? 0;
    const expireAfter = settings.batchExpireAfterMs ?? 0;
    const share = (elapsed: number): number =>
      completeAfter > 0 ? Math.min(1, elapsed / completeAfter) : 0.5;
    if (b.cancelledAt !== undefined) {
      return finish(b, 'cancelled', Math.floor(b.lines.length * share(b.cancelledAt - b.createdAt)), now);
    }
    const elapsed = now - b.createdAt;
    const expires = expireAfter > 0 && (completeAfter === 0 || expireAfter < completeAfter);
    if (expires && elapsed >= expireAfter) {
      return finish(b, 'expired', Math.floor(b.lines.length * share(expireAfter)), now);
    }
    if (elapsed >= completeAfter) return finish(b, 'completed', b.lines.length, now);
    return elapsed <= 0 ? 'validating' : 'in_progress';
  }

  /** Answers the first `answered` lines and writes the files: the batch's work, done at once. */
  function finish(b: StoredBatch, state: string, answered: number, now: number): string {
    const rnd: Random = seededRandom((settings.seed ?? 1) * 7919 + b.seq);
    const out: string[] = [];
    const errors: string[] = [];
    b.lines.forEach((line, i) => {
      lineCounter++;
      const id = `batch_req_mock_${lineCounter}`;
      if (i >= answered) {
        // A cancelled batch's unstarted lines are simply absent, as OpenAI's are.
        if (state === 'expired') {
          errors.push(
            JSON.stringify({
              id,
              custom_id: line.customId,
              response: null,
              error: {
                code: 'batch_expired',
                message: 'This request could not be executed before the completion window expired.',
              },
            }),
          );
        }
        return;
      }
      const failed = rnd() < (settings.batchErrorRate ?? 0);
      const answer = failed
        ? {
            status: 500,
            body: errorBody('The server had an error while processing your request.', null, 'server_error'),
          }
        : host.answer(line.body);
      const text = JSON.stringify({
        id,
        custom_id: line.customId,
        response: { status_code: answer.status, request_id: `req_mock_${lineCounter}`, body: answer.body },
        error: null,
      });
      (answer.status === 200 ? out : errors).push(text);
    });
    if (settings.batchShuffle) {
      shuffle(out, rnd);
      shuffle(errors, rnd);
    }
    const jsonl = (lines: string[]): string => lines.map((l) => `${l}\n`).join('');
    b.final = {
      state,
      at: now,
      completed: out.length,
      failed: errors.length,
      ...(out.length > 0
        ? { outputFileId: addFile(`${b.id}_output.jsonl`, 'batch_output', jsonl(out)).id }
        : {}),
      ...(errors.length > 0
        ? { errorFileId: addFile(`${b.id}_error.jsonl`, 'batch_output', jsonl(errors)).id }
        : {}),
    };
    host.changed();
    return state;
  }

  function batchObject(b: StoredBatch, state = stateOf(b)): unknown {
    const f = b.final;
    const completeAfter = settings.batchCompleteAfterMs ?? 0;
    const elapsed = clock.now() - b.createdAt;
    const running = state === 'in_progress' && completeAfter > 0;
    const stamp = (s: string): number | null => (f?.state === s ? seconds(f.at) : null);
    return {
      id: b.id,
      object: 'batch',
      endpoint: CHAT_ENDPOINT,
      errors:
        b.invalid.length > 0 ? { object: 'list', data: b.invalid.map((e) => ({ ...e, param: null })) } : null,
      input_file_id: b.inputFileId,
      completion_window: '24h',
      status: state,
      output_file_id: f?.outputFileId ?? null,
      error_file_id: f?.errorFileId ?? null,
      created_at: seconds(b.createdAt),
      in_progress_at: state === 'validating' || b.invalid.length > 0 ? null : seconds(b.createdAt),
      expires_at: seconds(b.createdAt) + 24 * 3600,
      finalizing_at: f && f.state === 'completed' ? seconds(f.at) : null,
      completed_at: stamp('completed'),
      failed_at: stamp('failed'),
      expired_at: stamp('expired'),
      cancelling_at: b.cancelledAt === undefined ? null : seconds(b.cancelledAt),
      cancelled_at: stamp('cancelled'),
      request_counts: {
        total: b.invalid.length > 0 ? 0 : b.lines.length,
        completed: f ? f.completed : running ? Math.floor((b.lines.length * elapsed) / completeAfter) : 0,
        failed: f ? f.failed : 0,
      },
      metadata: b.metadata,
    };
  }

  /** Reads an uploaded JSONL file as OpenAI's validation does; problems fail the batch, not the create. */
  function readInput(content: string): { lines: InputLine[]; invalid: StoredBatch['invalid'] } {
    const lines: InputLine[] = [];
    const invalid: StoredBatch['invalid'] = [];
    const seen = new Set<string>();
    content.split('\n').forEach((raw, i) => {
      if (raw.trim() === '') return;
      let o: { custom_id?: unknown; method?: unknown; url?: unknown; body?: unknown };
      try {
        o = JSON.parse(raw) as typeof o;
      } catch {
        invalid.push({ code: 'invalid_json_line', message: `line ${i + 1} is not valid JSON`, line: i + 1 });
        return;
      }
      if (typeof o.custom_id !== 'string' || seen.has(o.custom_id)) {
        invalid.push({
          code: 'duplicate_custom_id',
          message: `line ${i + 1}: custom_id must be a unique string`,
          line: i + 1,
        });
        return;
      }
      if (o.method !== 'POST' || o.url !== CHAT_ENDPOINT) {
        invalid.push({
          code: 'invalid_url',
          message: `line ${i + 1}: expected POST ${CHAT_ENDPOINT}, got ${String(o.method)} ${String(o.url)}`,
          line: i + 1,
        });
        return;
      }
      seen.add(o.custom_id);
      lines.push({ customId: o.custom_id, body: o.body });
    });
    if (lines.length === 0 && invalid.length === 0) {
      invalid.push({ code: 'empty_file', message: 'the input file has no request lines', line: 0 });
    }
    return { lines, invalid };
  }

  function promptTokens(lines: InputLine[]): number {
    let tokens = 0;
    for (const l of lines) {
      const parsed = parseChatRequest(l.body);
      tokens += parsed.ok
        ? tokensForChars(parsed.request.promptChars)
        : tokensForChars(JSON.stringify(l.body).length);
    }
    return tokens;
  }

  /** Creates the batch a POST /batches asked for, or says why not (status and body). */
  function create(body: unknown): { status: number; body: unknown } {
    const b = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    const input = typeof b['input_file_id'] === 'string' ? files.get(b['input_file_id']) : undefined;
    if (input?.purpose !== 'batch') {
      return { status: 400, body: errorBody(`Invalid input_file_id: ${String(b['input_file_id'])}`) };
    }
    if (b['endpoint'] !== CHAT_ENDPOINT || b['completion_window'] !== '24h') {
      return { status: 400, body: errorBody(`endpoint must be ${CHAT_ENDPOINT} and completion_window 24h`) };
    }
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries((b['metadata'] as Record<string, unknown> | null) ?? {})) {
      if (typeof v === 'string') metadata[k] = v;
    }
    const { lines, invalid } = readInput(input.content);
    const tokens = promptTokens(lines);
    const limit = settings.batchEnqueuedTokenLimit ?? 0;
    if (limit > 0) {
      let queued = tokens;
      for (const other of batches.values()) {
        stateOf(other); // a batch that has finished by now no longer holds its tokens
        if (!other.final) queued += other.promptTokens;
      }
      if (queued > limit) {
        log.enqueuedRefusals++;
        host.changed();
        return {
          status: 429,
          body: errorBody(
            `Enqueued token limit reached for mock in organization org-mock. Limit: ${limit} enqueued tokens. ` +
              'Please try submitting an equal or smaller batch once some of your current batches have been completed.',
            'token_limit_exceeded',
            'tokens',
          ),
        };
      }
    }
    batchCounter++;
    const batch: StoredBatch = {
      id: `batch_mock_${batchCounter}`,
      seq: batchCounter,
      inputFileId: input.id,
      metadata,
      lines,
      promptTokens: tokens,
      createdAt: clock.now(),
      invalid,
      cancelledAt: undefined,
      final: undefined,
    };
    batches.set(batch.id, batch);
    log.batches.push({
      id: batch.id,
      inputFileId: input.id,
      metadata,
      lines: lines.length,
      promptTokens: tokens,
      at: batch.createdAt,
    });
    log.linesSubmitted += lines.length;
    host.changed();
    // OpenAI answers a create with the batch as it starts: validating.
    return { status: 200, body: batchObject(batch, 'validating') };
  }

  /** Stores an upload; resolves with what the log keeps of it (the request's record), if stored. */
  async function upload(req: IncomingMessage, reply: MockBatchReply): Promise<MockUpload | undefined> {
    const raw = await readBytes(req);
    let form: FormData;
    try {
      // undici's multipart parser: the mock reads uploads as strictly as a real server does.
      form = await new Response(raw, {
        headers: { 'content-type': req.headers['content-type'] ?? '' },
      }).formData();
    } catch (e) {
      reply.json(400, errorBody(`could not parse the multipart body: ${String(e)}`));
      return undefined;
    }
    const purpose = form.get('purpose');
    const file = form.get('file');
    if (purpose !== 'batch' || !(file instanceof File)) {
      reply.json(400, errorBody("expected a multipart body with purpose 'batch' and a 'file' part"));
      return undefined;
    }
    const content = await file.text();
    const stored = addFile(file.name, 'batch', content);
    const { lines } = readInput(content);
    const entry = {
      fileId: stored.id,
      fileName: file.name,
      lines: lines.length,
      customIds: lines.map((l) => l.customId),
    };
    log.uploads.push(entry);
    host.changed();
    reply.json(200, fileObject(stored));
    return entry;
  }

  /** Serves one request; resolves with what the server's request record keeps as its body. */
  async function handle(
    r: MockBatchRoute,
    req: IncomingMessage,
    res: ServerResponse,
    reply: MockBatchReply,
  ): Promise<unknown> {
    const query = new URL(req.url ?? '/', 'http://mock').searchParams;
    switch (r.op) {
      case 'upload':
        return upload(req, reply);
      case 'listFiles': {
        const purpose = query.get('purpose');
        const listed = [...files.values()].reverse().filter((f) => !purpose || f.purpose === purpose);
        const p = page(listed, query, 10_000);
        reply.json(200, { ...p, data: p.data.map(fileObject) });
        return undefined;
      }
      case 'file':
      case 'content': {
        const f = files.get(r.id);
        if (!f) reply.json(404, errorBody(`No such File object: ${r.id}`));
        else if (r.op === 'file') reply.json(200, fileObject(f));
        else reply.text(200, f.content);
        return undefined;
      }
      case 'create': {
        const text = await readBytes(req).then((b) => b.toString('utf8'));
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          reply.json(400, errorBody('We could not parse the JSON body of your request.'));
          return text;
        }
        if (settings.batchHoldCreate) {
          log.heldCreates++;
          host.changed();
          await new Promise<void>((resolve) => held.push(resolve));
          log.heldCreates--;
        }
        const made = create(body);
        // Carried out even when the client has gone: its reply is what gets lost.
        if (!res.destroyed) reply.json(made.status, made.body);
        return body;
      }
      case 'listBatches': {
        const listed = [...batches.values()].reverse();
        const p = page(listed, query, 20);
        reply.json(200, { ...p, data: p.data.map((b) => batchObject(b)) });
        return undefined;
      }
      case 'batch': {
        const b = batches.get(r.id);
        if (!b) {
          reply.json(404, errorBody(`No such Batch object: ${r.id}`));
          return undefined;
        }
        const state = stateOf(b);
        log.polls.push({ id: b.id, at: clock.now(), state });
        host.changed();
        reply.json(200, batchObject(b, state));
        return undefined;
      }
      case 'cancel': {
        const b = batches.get(r.id);
        if (!b) {
          reply.json(404, errorBody(`No such Batch object: ${r.id}`));
          return undefined;
        }
        const state = stateOf(b);
        if (state !== 'validating' && state !== 'in_progress' && state !== 'cancelled') {
          reply.json(400, errorBody(`Cannot cancel a batch with status ${state}.`));
          return undefined;
        }
        log.cancels.push(b.id);
        if (b.cancelledAt === undefined) b.cancelledAt = clock.now();
        host.changed();
        // `cancelling` now; the next look finds it `cancelled` with what was answered by then.
        reply.json(200, batchObject(b, state === 'cancelled' ? state : 'cancelling'));
        return undefined;
      }
    }
  }

  return {
    log,
    route,
    handle,
    /** Call after settings change: lets held creates go once `batchHoldCreate` is off. */
    settingsChanged(): void {
      if (settings.batchHoldCreate) return;
      for (const release of held.splice(0)) release();
    },
  };
}

export type MockBatch = ReturnType<typeof createMockBatch>;

function shuffle<T>(items: T[], rnd: Random): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

function readBytes(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
