import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ResponseCache, SingleFlight } from '../src/cache/index.ts';
import type { ChatClient, ChatRequest, ChatResult } from '../src/client/chat-client.ts';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError, ProviderError } from '../src/core/errors.ts';
import type { RunEvent } from '../src/core/events.ts';
import { seededRandom } from '../src/core/random.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import { CircuitWaits } from '../src/job/circuit-waits.ts';
import { cacheKeys, executeJob, type JobContext } from '../src/job/execute.ts';
import { noRateLimitInfo } from '../src/limiter/headers.ts';
import { createLimiter, sqliteLimiterStore } from '../src/limiter/index.ts';
import { loadPipeline } from '../src/pipeline/registry.ts';
import {
  CircuitBreaker,
  defaultBreakerSettings,
  RetryPolicy,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';
import { alwaysThere } from '../src/store/health.ts';
import { drive } from './support/drive.ts';

const pipeline = loadPipeline('vocabulary', process.cwd(), {
  sourceLanguage: 'Korean',
  targetLanguage: 'English',
});
const cardsStage = pipeline.stages[1]!;
const goodCards = JSON.stringify({
  cards: [{ front: '사과', back: 'apple', cardType: 'recognition', tags: ['food'] }],
});
const input = { item: { term: '사과', context: {} }, previous: { analyze: { lemma: '사과' } } };
const noHeaders = noRateLimitInfo;

type Script = string | ProviderError;

/** A client that answers from a script and records every request it was sent. */
function scriptedClient(answers: Script[], gate?: Promise<void>): ChatClient & { requests: ChatRequest[] } {
  const requests: ChatRequest[] = [];
  return {
    requests,
    async complete(request): Promise<ChatResult> {
      requests.push(request);
      await gate;
      const next = answers.length > 1 ? answers.shift()! : answers[0]!;
      if (typeof next !== 'string') throw next;
      return {
        content: next,
        usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15 },
        usageEstimated: false,
        status: 200,
        rateLimit: noHeaders,
      };
    },
  };
}

const key = 'http://x|m|k';

function breakerOn(db: Db, clock: FakeClock): CircuitBreaker {
  return new CircuitBreaker(new SqliteBreakerStore(db, clock), key, defaultBreakerSettings, {
    clock,
    ownerId: 'me',
  });
}

function context(
  client: ChatClient,
  over: Partial<JobContext> & { clock?: FakeClock } = {},
): JobContext & { seen: RunEvent[]; clock: FakeClock; db: Db } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-job-'));
  const db = openDatabase(join(dir, 'state.db'));
  const clock = over.clock ?? new FakeClock();
  const seen: RunEvent[] = [];
  return {
    batchId: 'b1',
    providerKey: key,
    model: 'm',
    temperature: 0.3,
    maxTokens: 500,
    client,
    cacheKey: cacheKeys({ baseUrl: 'http://x', model: 'm', temperature: 0.3, maxTokens: 500 }),
    limiter: createLimiter(
      sqliteLimiterStore(db, { clock }),
      key,
      { rpm: 60_000, tpm: undefined, burstSeconds: 1, shards: 1, maxRequestTokens: 5000 },
      { clock },
    ),
    breaker: breakerOn(db, clock),
    retry: new RetryPolicy({ maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 }, { random: seededRandom(1) }),
    cache: ResponseCache.open(
      join(dir, 'cache.db'),
      { ttlMs: 60_000, jitter: 0, compressThresholdBytes: 1024 },
      { clock, random: seededRandom(2) },
    ),
    cacheMode: 'normal' as const,
    staleIfError: false,
    singleFlight: new SingleFlight(),
    maxWaitMs: 60_000,
    circuitWaits: new CircuitWaits(),
    storeHealth: alwaysThere,
    stop: {
      clock,
      signal: new AbortController().signal,
      stopSignal: new AbortController().signal,
      deadlineMs: undefined,
    },
    counters: { requests: 0, retries: 0, cacheHits: 0, cacheMisses: 0 },
    events: { emit: (e: RunEvent) => void seen.push(e) },
    seen,
    clock,
    db,
    ...over,
  };
}

describe('executeJob: the cache first, then the request through the policies', () => {
  test('a validated answer is cached, and the same request later is answered without a call', async () => {
    const client = scriptedClient([goodCards]);
    const ctx = context(client);
    const first = await executeJob(ctx, cardsStage, input, 0);
    assert.equal(first.ok && first.cached, false);
    const second = await executeJob(ctx, cardsStage, input, 0);
    assert.ok(second.ok);
    assert.equal(second.cached, true);
    assert.equal(client.requests.length, 1);
    assert.deepEqual(ctx.counters, { requests: 1, retries: 0, cacheHits: 1, cacheMisses: 1 });
  });

  test('a schema-invalid answer is retried once with the validation error added to the prompt', async () => {
    const client = scriptedClient(['{"cards":[]}', goodCards]);
    const ctx = context(client);
    const result = await drive(ctx.clock, executeJob(ctx, cardsStage, input, 0), 1);
    assert.ok(result.ok);
    assert.equal(result.attempts, 2);
    const retried = client.requests[1]!.messages;
    assert.equal(retried.length, 4);
    assert.equal(retried[2]!.role, 'assistant');
    assert.match(retried[3]!.content, /rejected: the cards answer does not match its schema \(cards:/);
    // The rejected answer was billed too: the job reports both answers' tokens.
    assert.deepEqual(result.usage, { promptTokens: 20, completionTokens: 10, totalTokens: 30 });
  });

  test('a job whose answers never validate reports the tokens it was billed for', async () => {
    const client = scriptedClient(['{"cards":[]}']);
    const ctx = context(client);
    const result = await drive(ctx.clock, executeJob(ctx, cardsStage, input, 0), 1);
    assert.equal(result.ok, false);
    assert.equal(result.usage.promptTokens, 10 * result.requests);
    assert.ok(result.requests >= 2);
  });

  test('a permanent error fails the item after one request, without retry', async () => {
    const client = scriptedClient([
      new ProviderError('bad_request', 'HTTP 400: bad', { retryable: false, status: 400 }),
    ]);
    const result = await executeJob(context(client), cardsStage, input, 0);
    assert.equal(result.ok, false);
    assert.equal(client.requests.length, 1);
    assert.equal(!result.ok && result.error.kind, 'bad_request');
  });

  test('transient errors are retried until an answer validates', async () => {
    const server = new ProviderError('server', 'HTTP 500', { retryable: true, status: 500 });
    const client = scriptedClient([server, server, goodCards]);
    const ctx = context(client);
    const result = await drive(ctx.clock, executeJob(ctx, cardsStage, input, 0), 1);
    assert.ok(result.ok);
    assert.equal(result.requests, 3);
    assert.equal(ctx.counters.retries, 2);
    assert.deepEqual(
      ctx.seen.flatMap((e) => (e.type === 'retry_scheduled' ? [e.errorKind] : [])),
      ['server', 'server'],
    );
  });

  test('a rejected key ends the run: the error is thrown, not returned', async () => {
    const client = scriptedClient([new ProviderError('auth', 'HTTP 401', { retryable: false, status: 401 })]);
    await assert.rejects(
      executeJob(context(client), cardsStage, input, 0),
      (e) => isFlashcardsError(e) && e.kind === 'auth',
    );
  });

  test('an isolated breaker stops the run with circuit_open and a hint, sending nothing', async () => {
    const client = scriptedClient([goodCards]);
    const ctx = context(client);
    await breakerOn(ctx.db, ctx.clock).isolate('maintenance');
    await assert.rejects(
      executeJob(ctx, cardsStage, input, 0),
      (e) => isFlashcardsError(e) && e.kind === 'circuit_open' && /breaker close/.test(e.hint ?? ''),
    );
    assert.equal(client.requests.length, 0);
  });

  test('--stale-if-error serves an expired entry while the circuit is open', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const first = context(scriptedClient([goodCards]), { clock });
    assert.ok((await executeJob(first, cardsStage, input, 0)).ok);
    await clock.advance(120_000);
    const client = scriptedClient([goodCards]);
    const ctx = context(client, { clock, cache: first.cache, staleIfError: true });
    await breakerOn(ctx.db, clock).isolate('down');
    const result = await executeJob(ctx, cardsStage, input, 0);
    assert.ok(result.ok);
    assert.equal(result.cached, true);
    assert.equal(client.requests.length, 0);
  });
});

describe('executeJob: identical requests in flight share one call, paid once', () => {
  test('twenty identical jobs make one request, and only the job that sent it reports its usage', async () => {
    let release: () => void = () => {};
    const client = scriptedClient([goodCards], new Promise<void>((r) => (release = r)));
    const ctx = context(client, { cacheMode: 'off' });
    const pending = Array.from({ length: 20 }, () => executeJob(ctx, cardsStage, input, 0));
    release();
    const results = await Promise.all(pending);
    assert.ok(results.every((r) => r.ok));
    assert.equal(client.requests.length, 1);
    assert.deepEqual(
      results.map((r) => (r.ok ? r.usage.totalTokens : -1)).reduce((a, b) => a + b, 0),
      15,
      'the tokens of one request, not twenty',
    );
    assert.equal(results.filter((r) => r.requests === 1).length, 1);
    assert.ok(results.filter((r) => r.requests === 0).every((r) => r.ok && r.cached));
    assert.equal(ctx.counters.requests, 1);
  });
});

describe('executeJob on a cache that answers after a round trip (a shared store)', () => {
  test('a job that starts while an identical one is still reading the cache shares its request', async () => {
    const client = scriptedClient([goodCards]);
    const ctx = context(client);
    const stored = ctx.cache!;
    // Each read sees the cache as it was when asked, and answers when the test lets it.
    const held: (() => void)[] = [];
    ctx.cache = {
      get: async (key, opts) => {
        const answer = stored.get(key, opts);
        await new Promise<void>((resolve) => held.push(resolve));
        return answer;
      },
      put: (key, entry) => stored.put(key, entry),
      recordRun: (run) => stored.recordRun(run),
      close: () => stored.close(),
    };
    const first = executeJob(ctx, cardsStage, input, 0);
    const second = executeJob(ctx, cardsStage, input, 0);
    const nextRead = async (): Promise<() => void> => {
      while (held.length === 0) await new Promise((resolve) => setImmediate(resolve));
      return held.shift()!;
    };
    (await nextRead())();
    assert.ok((await first).ok);
    // Had the second job read on its own, its read (a miss, taken before the answer was put)
    // would be answered only now, after the first job's flight ended: a second paid request.
    if (held.length > 0) held.shift()!();
    assert.ok((await second).ok);
    assert.equal(client.requests.length, 1);
    assert.deepEqual(ctx.counters, { requests: 1, retries: 0, cacheHits: 0, cacheMisses: 2 });
  });
});

describe("executeJob while the provider's limits are still unknown", () => {
  test('a job held back by the probe goes as soon as the probe is answered, not at its next poll', async () => {
    // A clock that never moves: a held job could only go on by being woken.
    const clock = new FakeClock();
    const db = openDatabase(':memory:');
    const limiter = createLimiter(
      sqliteLimiterStore(db, { clock }),
      key,
      { rpm: undefined, tpm: undefined, burstSeconds: 1, shards: 1, maxRequestTokens: 5000 },
      { clock },
    );
    const client = scriptedClient([goodCards]);
    const ctx = context(client, { clock, limiter, cacheMode: 'off' });
    const other = { ...input, item: { term: '배', context: {} } };
    const results = await Promise.all([
      executeJob(ctx, cardsStage, input, 0),
      executeJob(ctx, cardsStage, other, 1),
    ]);
    assert.ok(results.every((r) => r.ok));
    assert.equal(client.requests.length, 2);
  });
});

describe('executeJob when our own bookkeeping fails', () => {
  test('a cache that cannot be written does not fail a paid, valid answer', async () => {
    const client = scriptedClient([goodCards]);
    const ctx = context(client);
    ctx.cache!.put = () => {
      throw new Error('disk I/O error');
    };
    const result = await executeJob(ctx, cardsStage, input, 0);
    assert.ok(result.ok);
    assert.equal(client.requests.length, 1);
    assert.equal((await breakerOn(ctx.db, ctx.clock).status()).failures, 0);
  });
});
