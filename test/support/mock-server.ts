import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tokensForChars } from '../../src/client/chat-client.ts';
import {
  chatCompletion,
  type MockChatRequest,
  mockContent,
  mockModelList,
  mockRoute,
  parseChatRequest,
} from '../../src/client/mock-fetch.ts';
import type { JsonSchema } from '../../src/client/schema-sample.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import { type Random, seededRandom } from '../../src/core/random.ts';
import { createMockBatch, type MockBatchLog, type MockBatchSettings } from './mock-batch.ts';

/**
 * Behaviour knobs; all but `port` and `clock` can be changed while running with `server.set()`.
 * The batch API's (`batch*`) are described in mock-batch.ts.
 */
export interface MockOptions extends MockBatchSettings {
  /** Port to listen on (default 0: any free port). Start only. */
  port?: number;
  /** Drives rate-limit refill, `at` timestamps and latency sleeps (default: the system clock). Start only. */
  clock?: Clock;
  /** Seed of the random source behind latency and fault draws (default 1). */
  seed?: number;
  /** Delay before answering: a fixed value or a uniform [min, max] range. Default 0. */
  latencyMs?: number | readonly [number, number];
  /** Per-request probabilities (0..1) of each fault, drawn once per request. */
  error500?: number;
  error503?: number;
  /** Destroy the socket without an answer or half-way through the body. */
  reset?: number;
  /** 200 whose body is cut in half (invalid JSON). */
  truncated?: number;
  /** 200 whose content is valid JSON that does not match the schema. */
  invalidSchema?: number;
  /** Never answer; the request ends when the client gives up. */
  hang?: number;
  /**
   * Work on at most this many requests at once, each for its latency, the rest waiting in line
   * (a local model server); 0 or unset: every request at once.
   */
  parallel?: number;
  /**
   * Answers wait, in flight, until `set({ hold: false })`: a test decides when they arrive instead
   * of racing a latency (e.g. a run cannot finish before the test has signalled it).
   */
  hold?: boolean;
  /** Every chat request gets a 503 while true. */
  outage?: boolean;
  /** Requests per minute (token bucket); 0 or unset: unlimited. */
  rpm?: number;
  /** Tokens per minute (token bucket); 0 or unset: unlimited. */
  tpm?: number;
  /** Bucket capacity in seconds of refill (default 1), as providers enforce limits on short windows. */
  burstSeconds?: number;
  /** Send x-ratelimit-* headers (default true); 429s happen either way. */
  sendRateLimitHeaders?: boolean;
  /** Force a 401 invalid_api_key answer. */
  status401?: boolean;
  /** Force a 429 insufficient_quota answer. */
  quota?: boolean;
  /** 401 unless the request carries `Authorization: Bearer <something>`. */
  requireAuth?: boolean;
  /** Keep every request in `server.requests` (default true; turn off for long soak runs). */
  record?: boolean;
  /** The model ids `GET /v1/models` lists (default: mockModelList's). Chat requests take any model. */
  models?: readonly string[];
}

export type MockSettings = Omit<MockOptions, 'port' | 'clock'>;

export type MockFault = 'hang' | 'reset' | 'error500' | 'error503' | 'truncated' | 'invalidSchema';

export interface RecordedRequest {
  /** Arrival time, from the server's clock. */
  at: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON, or the raw text when it is not JSON (undefined while still being read). */
  body: unknown;
  /** Status sent; 0 when no complete answer was sent (reset, hang). */
  status: number;
  /** The injected fault, when one was drawn. */
  fault: MockFault | undefined;
}

export interface MockStats {
  total: number;
  byStatus: Record<number, number>;
  /** Tokens (prompt + completion, as its usage said) of the complete answers it sent. */
  tokensServed: number;
  /** Tokens its token bucket booked for the requests it admitted (prompt + max_tokens, up front). */
  tokensBooked: number;
  inFlight: number;
  maxInFlight: number;
  /** Requests waiting for `set({ hold: false })`. */
  held: number;
}

export interface MockServer {
  /** Base URL including /v1, e.g. http://127.0.0.1:40123/v1. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  stats: MockStats;
  /** Changes behaviour from the next request on; rate-limit changes start from full buckets. */
  set(options: Partial<MockSettings>): void;
  /** The settings in force. */
  readonly settings: Readonly<MockSettings>;
  /** What the batch API endpoints saw: uploads, batches created, polls, cancels, lines submitted. */
  batch: Readonly<MockBatchLog>;
  /** Forgets recorded requests and zeroes the counters (in-flight requests still count). */
  clear(): void;
  /**
   * Resolves once `check()` holds, checked whenever a request arrives (its body not read yet), has
   * its fault drawn, starts waiting (hold, latency) or ends; rejects if `check` throws. How tests
   * wait for the provider's side of a run: no polling, no timing window (the test runner's
   * timeout ends a wait that never comes true).
   */
  until(check: () => boolean): Promise<void>;
  /** Stops listening and destroys open sockets, hanging ones included. */
  close(): Promise<void>;
}

/** Formats a wait the way OpenAI's x-ratelimit-reset-* headers do: 120ms, 1s, 1.5s, 6m0s, 1h2m3s. */
export function formatResetDuration(ms: number): string {
  const whole = Math.ceil(ms);
  if (whole <= 0) return '0s';
  if (whole < 1000) return `${whole}ms`;
  const h = Math.floor(whole / 3_600_000);
  const m = Math.floor((whole % 3_600_000) / 60_000);
  const s = `${Number(((whole % 60_000) / 1000).toFixed(3))}s`;
  if (h > 0) return `${h}h${m}m${s}`;
  return m > 0 ? `${m}m${s}` : s;
}

/**
 * A token bucket holding `burstSeconds` worth of a per-minute limit, kept as GCRA (a theoretical
 * arrival time) so that whole-millisecond clocks give exact, integer answers.
 */
class Bucket {
  readonly limit: number;
  /** Milliseconds of refill per unit. */
  readonly interval: number;
  /** Milliseconds of refill the bucket holds: at least one unit. */
  readonly tolerance: number;
  tat: number;

  constructor(limitPerMinute: number, burstSeconds: number, now: number) {
    this.limit = limitPerMinute;
    this.interval = 60_000 / limitPerMinute;
    this.tolerance = Math.max(burstSeconds * 1000, this.interval);
    this.tat = now;
  }

  /** Ms of refill owed at `now`: 0 when the bucket is full. */
  owed(now: number): number {
    return Math.max(this.tat, now) - now;
  }

  /** Ms until `cost` units fit; a cost above capacity waits for a full bucket and goes into debt. */
  waitMs(cost: number, now: number): number {
    const owed = this.owed(now);
    if (cost * this.interval > this.tolerance) return owed;
    return Math.max(0, owed + cost * this.interval - this.tolerance);
  }

  take(cost: number, now: number): void {
    this.tat = Math.max(this.tat, now) + cost * this.interval;
  }

  used(now: number): number {
    return Math.ceil(this.owed(now) / this.interval);
  }

  headers(kind: 'requests' | 'tokens', now: number): Record<string, string> {
    const owed = this.owed(now);
    return {
      [`x-ratelimit-limit-${kind}`]: String(this.limit),
      [`x-ratelimit-remaining-${kind}`]: String(
        Math.max(0, Math.floor((this.tolerance - owed) / this.interval)),
      ),
      [`x-ratelimit-reset-${kind}`]: formatResetDuration(owed),
    };
  }
}

interface Limits {
  requests: Bucket | undefined;
  tokens: Bucket | undefined;
}

const defaults: MockSettings = {
  seed: 1,
  latencyMs: 0,
  error500: 0,
  error503: 0,
  reset: 0,
  truncated: 0,
  invalidSchema: 0,
  hang: 0,
  hold: false,
  outage: false,
  rpm: 0,
  tpm: 0,
  burstSeconds: 1,
  sendRateLimitHeaders: true,
  status401: false,
  quota: false,
  requireAuth: false,
  record: true,
};

const faultOrder: readonly MockFault[] = [
  'hang',
  'reset',
  'error500',
  'error503',
  'truncated',
  'invalidSchema',
];

/** Samples are pure functions of (schema, term): cache them so the hot path is JSON work only. */
const sampleCacheLimit = 10_000;

/**
 * An OpenAI-compatible provider on 127.0.0.1 for tests and benchmarks: schema-valid answers with
 * usage, real-looking rate limiting (token buckets, 429 + Retry-After, x-ratelimit-* headers), and
 * seeded faults (500/503, resets, truncated bodies, schema-invalid content, hangs, outages).
 */
export async function startMockServer(opts: MockOptions = {}): Promise<MockServer> {
  const clock = opts.clock ?? systemClock;
  const { port: requestedPort = 0, clock: _clock, ...initial } = opts;
  const settings: MockSettings = { ...defaults, ...initial };
  let rnd: Random = seededRandom(settings.seed ?? 1);
  let limits: Limits = makeLimits();
  const requests: RecordedRequest[] = [];
  const stats: MockStats = {
    total: 0,
    byStatus: {},
    tokensServed: 0,
    tokensBooked: 0,
    inFlight: 0,
    maxInFlight: 0,
    held: 0,
  };
  const samples = new Map<string, string>();
  let counter = 0;
  /** Requests waiting for a worker when `parallel` is set, first come first served. */
  const line: (() => void)[] = [];
  let busy = 0;
  /**
   * A worker for this request (with `parallel` set): a function that frees it, called when the
   * answer ends; null when the client went away while waiting in line.
   */
  async function workerFor(res: ServerResponse): Promise<(() => void) | undefined | null> {
    const limit = settings.parallel ?? 0;
    if (limit <= 0) return undefined;
    if (busy >= limit) {
      const turn = await new Promise<boolean>((resolve) => {
        const go = (): void => {
          res.off('close', gone);
          resolve(true);
        };
        const gone = (): void => {
          const i = line.indexOf(go);
          if (i >= 0) line.splice(i, 1);
          resolve(false);
        };
        line.push(go);
        res.once('close', gone);
      });
      if (!turn) return null;
    } else {
      busy++;
    }
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      const next = line.shift();
      if (next) next();
      else busy--;
    };
  }

  /** Releases of the requests held by `hold`. */
  const holds = new Set<() => void>();
  const waiters: { check: () => boolean; resolve: () => void; reject: (e: unknown) => void }[] = [];

  /** Something a test may wait on happened: settle the waits that came true (or whose check threw). */
  function changed(): void {
    for (const w of [...waiters]) {
      try {
        if (!w.check()) continue;
        w.resolve();
      } catch (e) {
        // A check's bug fails the test that waits, not the request being served.
        w.reject(e);
      }
      waiters.splice(waiters.indexOf(w), 1);
    }
  }

  /** Waits for `set({ hold: false })`; false when the client went away first. */
  function held(res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      const release = (): void => {
        res.off('close', onClose);
        stats.held--;
        resolve(true);
      };
      const onClose = (): void => {
        holds.delete(release);
        stats.held--;
        resolve(false);
        changed();
      };
      res.once('close', onClose);
      holds.add(release);
      stats.held++;
      changed();
    });
  }

  function makeLimits(): Limits {
    const burst = settings.burstSeconds && settings.burstSeconds > 0 ? settings.burstSeconds : 1;
    const now = clock.now();
    return {
      requests: settings.rpm ? new Bucket(settings.rpm, burst, now) : undefined,
      tokens: settings.tpm ? new Bucket(settings.tpm, burst, now) : undefined,
    };
  }

  function rateHeaders(): Record<string, string> {
    if (settings.sendRateLimitHeaders === false) return {};
    const now = clock.now();
    return { ...limits.requests?.headers('requests', now), ...limits.tokens?.headers('tokens', now) };
  }

  function count(record: RecordedRequest, status: number): void {
    record.status = status;
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    changed();
  }

  function send(
    res: ServerResponse,
    record: RecordedRequest,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    count(record, status);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  function contentFor(request: MockChatRequest): string {
    const key = `${request.term}\u0000${request.format}\u0000${JSON.stringify(request.schema)}`;
    let content = samples.get(key);
    if (content === undefined) {
      content = mockContent(request, false);
      if (samples.size >= sampleCacheLimit) samples.clear();
      samples.set(key, content);
    }
    return content;
  }

  function drawFault(): MockFault | undefined {
    let u = rnd();
    for (const fault of faultOrder) {
      const p = settings[fault] ?? 0;
      if (u < p) return fault;
      u -= p;
    }
    return undefined;
  }

  function latency(): number {
    const l = settings.latencyMs ?? 0;
    if (typeof l === 'number') return l;
    const [min, max] = l;
    return min + rnd() * (max - min);
  }

  /** Takes one request (and its tokens) from the buckets, or says how long to wait and why. */
  function admit(cost: number): { ok: true } | { ok: false; waitMs: number; kind: 'requests' | 'tokens' } {
    const now = clock.now();
    const { requests: r, tokens: t } = limits;
    const rWait = r?.waitMs(1, now) ?? 0;
    const tWait = t?.waitMs(cost, now) ?? 0;
    if (rWait > 0 || tWait > 0) {
      return rWait >= tWait
        ? { ok: false, waitMs: rWait, kind: 'requests' }
        : { ok: false, waitMs: tWait, kind: 'tokens' };
    }
    r?.take(1, now);
    t?.take(cost, now);
    stats.tokensBooked += cost;
    return { ok: true };
  }

  function rateLimited(
    res: ServerResponse,
    record: RecordedRequest,
    waitMs: number,
    kind: 'requests' | 'tokens',
    cost: number,
  ): void {
    const bucket = kind === 'requests' ? limits.requests : limits.tokens;
    const unit = kind === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
    const used = bucket?.used(clock.now()) ?? 0;
    const retryMs = Math.max(1, Math.ceil(waitMs));
    send(
      res,
      record,
      429,
      {
        error: {
          message:
            `Rate limit reached for mock in organization org-mock on ${unit}: Limit ${bucket?.limit}, ` +
            `Used ${used}, Requested ${kind === 'requests' ? 1 : cost}. Please try again in ${formatResetDuration(retryMs)}.`,
          type: kind,
          param: null,
          code: 'rate_limit_exceeded',
        },
      },
      {
        ...rateHeaders(),
        'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))),
        'retry-after-ms': String(retryMs),
      },
    );
  }

  /** Answers 401 when the key is refused (`status401`, or `requireAuth` without a bearer token). */
  function unauthorized(req: IncomingMessage, res: ServerResponse, record: RecordedRequest): boolean {
    const auth = req.headers.authorization;
    if (!settings.status401 && !(settings.requireAuth && !/^Bearer\s+\S+/i.test(auth ?? ''))) return false;
    send(res, record, 401, {
      error: {
        message: 'Incorrect API key provided. You can find your API key at your provider.',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    return true;
  }

  async function handleChat(
    req: IncomingMessage,
    res: ServerResponse,
    record: RecordedRequest,
  ): Promise<void> {
    const raw = await readBody(req);
    let body: unknown;
    let isJson = true;
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
      isJson = false;
    }
    record.body = body;

    if (unauthorized(req, res, record)) return;
    if (settings.outage) {
      send(
        res,
        record,
        503,
        {
          error: { message: 'The server is overloaded or not ready yet.', type: 'server_error', code: null },
        },
        rateHeaders(),
      );
      return;
    }
    if (settings.quota) {
      send(res, record, 429, {
        error: {
          message: 'You exceeded your current quota, please check your plan and billing details.',
          type: 'insufficient_quota',
          param: null,
          code: 'insufficient_quota',
        },
      });
      return;
    }
    if (!isJson) {
      send(res, record, 400, {
        error: {
          message: 'We could not parse the JSON body of your request.',
          type: 'invalid_request_error',
        },
      });
      return;
    }
    const parsed = parseChatRequest(body);
    if (!parsed.ok) {
      send(res, record, 400, { error: { message: parsed.message, type: 'invalid_request_error' } });
      return;
    }
    const request = parsed.request;
    let content: string;
    try {
      content = contentFor(request);
    } catch (e) {
      send(res, record, 400, {
        error: { message: e instanceof Error ? e.message : String(e), type: 'invalid_request_error' },
      });
      return;
    }
    // Providers count the prompt plus the completion allowance against TPM before answering.
    const cost = tokensForChars(request.promptChars) + (request.maxTokens ?? tokensForChars(content.length));
    const admitted = admit(cost);
    if (!admitted.ok) {
      rateLimited(res, record, admitted.waitMs, admitted.kind, cost);
      return;
    }
    const headers = rateHeaders();
    const fault = drawFault();
    record.fault = fault;
    changed();
    if (settings.hold && fault !== 'hang' && !(await held(res))) return; // the client went away
    const delay = latency();
    const worker = fault === 'hang' ? undefined : await workerFor(res);
    if (worker === null) return; // the client went away while waiting in line
    res.once('close', () => worker?.());
    if (delay > 0 && fault !== 'hang') {
      const aborted = new AbortController();
      const onClose = (): void => aborted.abort();
      res.once('close', onClose);
      try {
        const sleeping = clock.sleep(delay, aborted.signal);
        // Now waiting on the clock: a test driving a FakeClock can advance from here.
        changed();
        await sleeping;
      } catch {
        return; // the client went away while we were "thinking"
      } finally {
        res.off('close', onClose);
      }
    }

    switch (fault) {
      case 'hang':
        count(record, 0);
        return; // res stays open until the client or close() destroys the socket
      case 'reset':
        count(record, 0);
        if (rnd() < 0.5) {
          req.socket.destroy();
        } else {
          // Half the resets happen mid-body, after a 200 status line and headers.
          const text = JSON.stringify(chatCompletion(request, content, nextId(), createdSeconds()));
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          });
          res.write(text.slice(0, Math.floor(text.length / 2)), () => req.socket.destroy());
        }
        return;
      case 'error500':
        send(
          res,
          record,
          500,
          {
            error: {
              message: 'The server had an error while processing your request.',
              type: 'server_error',
              code: null,
            },
          },
          headers,
        );
        return;
      case 'error503':
        send(
          res,
          record,
          503,
          {
            error: {
              message: 'The engine is currently overloaded, please try again later.',
              type: 'server_error',
              code: null,
            },
          },
          headers,
        );
        return;
      case 'truncated': {
        const text = JSON.stringify(chatCompletion(request, content, nextId(), createdSeconds()));
        const cut = text.slice(0, Math.floor(text.length / 2));
        count(record, 200);
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(cut),
          ...headers,
        });
        res.end(cut);
        return;
      }
      case 'invalidSchema':
        answer(
          res,
          record,
          chatCompletion(request, breakSchema(content, request.schema?.schema), nextId(), createdSeconds()),
          headers,
        );
        return;
      case undefined:
        answer(res, record, chatCompletion(request, content, nextId(), createdSeconds()), headers);
        return;
    }
  }

  function answer(
    res: ServerResponse,
    record: RecordedRequest,
    completion: ReturnType<typeof chatCompletion>,
    headers: Record<string, string>,
  ): void {
    stats.tokensServed += completion.usage.total_tokens;
    send(res, record, 200, completion, headers);
  }

  /** How /chat/completions answers `body` when nothing goes wrong: what a batch's request line gets. */
  function plainAnswer(body: unknown): { status: number; body: unknown } {
    const parsed = parseChatRequest(body);
    if (!parsed.ok)
      return { status: 400, body: { error: { message: parsed.message, type: 'invalid_request_error' } } };
    try {
      const completion = chatCompletion(
        parsed.request,
        contentFor(parsed.request),
        nextId(),
        createdSeconds(),
      );
      stats.tokensServed += completion.usage.total_tokens;
      return { status: 200, body: completion };
    } catch (e) {
      return {
        status: 400,
        body: {
          error: { message: e instanceof Error ? e.message : String(e), type: 'invalid_request_error' },
        },
      };
    }
  }

  const batch = createMockBatch({ clock, settings, answer: plainAnswer, changed: () => changed() });

  function nextId(): string {
    counter++;
    return `chatcmpl-mock-${counter}`;
  }

  function createdSeconds(): number {
    return Math.floor(clock.now() / 1000);
  }

  const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
    const record: RecordedRequest = {
      at: clock.now(),
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body: undefined,
      status: 0,
      fault: undefined,
    };
    if (settings.record !== false) requests.push(record);
    stats.total++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    res.once('close', () => {
      stats.inFlight--;
      changed();
    });
    changed();
    const batchRoute = batch.route(record.method, record.path);
    if (batchRoute !== undefined) {
      if (unauthorized(req, res, record)) return;
      const reply = {
        json: (status: number, body: unknown) => send(res, record, status, body),
        text: (status: number, body: string) => {
          count(record, status);
          res.writeHead(status, {
            'content-type': 'application/octet-stream',
            'content-length': Buffer.byteLength(body),
          });
          res.end(body);
        },
      };
      batch
        .handle(batchRoute, req, res, reply)
        .then((body) => {
          record.body = body;
        })
        .catch((e: unknown) => {
          if (!res.headersSent && !res.destroyed)
            reply.json(500, { error: { message: `mock server bug: ${String(e)}`, type: 'server_error' } });
        });
      return;
    }
    const route = mockRoute(record.method, record.path);
    if (route === 'models') {
      const listed = settings.models?.map((id) => ({ id, object: 'model', created: 0, owned_by: 'mock' }));
      send(res, record, 200, listed ? { object: 'list', data: listed } : mockModelList);
      return;
    }
    if (route === undefined) {
      send(res, record, 404, {
        error: {
          message: `Unknown request URL: ${record.method} ${record.path}. Use POST /v1/chat/completions or GET /v1/models.`,
          type: 'invalid_request_error',
          code: 'unknown_url',
        },
      });
      return;
    }
    handleChat(req, res, record).catch((e: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        send(res, record, 500, { error: { message: `mock server bug: ${String(e)}`, type: 'server_error' } });
      }
    });
  });
  server.keepAliveTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    stats,
    batch: batch.log,
    get settings(): Readonly<MockSettings> {
      return settings;
    },
    set(options) {
      Object.assign(settings, options);
      if ('seed' in options) rnd = seededRandom(settings.seed ?? 1);
      if ('rpm' in options || 'tpm' in options || 'burstSeconds' in options) limits = makeLimits();
      batch.settingsChanged();
      if (!settings.hold && holds.size > 0) {
        for (const release of holds) release();
        holds.clear();
        changed();
      }
    },
    until(check) {
      return new Promise((resolve, reject) => {
        waiters.push({ check, resolve, reject });
        changed();
      });
    },
    clear() {
      requests.length = 0;
      stats.total = 0;
      stats.byStatus = {};
      stats.tokensServed = 0;
      stats.tokensBooked = 0;
      stats.maxInFlight = stats.inFlight;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Destroyed sockets report their responses closed a few ticks later; let stats settle.
      await new Promise<void>((resolve, reject) => {
        waiters.push({ check: () => stats.inFlight === 0, resolve, reject });
        changed();
      });
    },
  };
}

/** A request's whole body as text. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () =>
      resolve(
        chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'),
      ),
    );
    req.on('error', reject);
  });
}

/**
 * Valid JSON that fails the schema: drop the first required property, else add one that strict
 * objects forbid; a non-object answer becomes an object.
 */
export function breakSchema(content: string, schema: JsonSchema | undefined): string {
  const value: unknown = JSON.parse(content);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const first = schema?.required?.[0];
    if (first !== undefined && first in value) {
      const { [first]: _dropped, ...rest } = value as Record<string, unknown>;
      return JSON.stringify(rest);
    }
    return JSON.stringify({ ...value, __mock_invalid: true });
  }
  return JSON.stringify({ __mock_invalid: value });
}
