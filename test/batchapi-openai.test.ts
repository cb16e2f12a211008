import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestLine, ResultLine } from '../src/batchapi/adapter.ts';
import { isEnqueuedLimitError, openaiBatchApi } from '../src/batchapi/openai.ts';
import type { Transport } from '../src/client/transport.ts';
import { FakeClock } from '../src/core/clock.ts';
import { isProviderError, type ProviderError } from '../src/core/errors.ts';
import { type MockOptions, type MockServer, startMockServer } from './support/mock-server.ts';

const KEY = 'sk-test-batch-0123456789';

const cardSchema = {
  type: 'object',
  properties: { front: { type: 'string' }, back: { type: 'string' } },
  required: ['front', 'back'],
  additionalProperties: false,
};

function line(term: string): RequestLine {
  return {
    customId: `item-${term}`,
    body: {
      model: 'gpt-test',
      messages: [
        { role: 'system', content: 'You write flashcards.' },
        { role: 'user', content: `Make a card.\n\nTerm: ${term}\n` },
      ],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'card', strict: true, schema: cardSchema },
      },
      max_tokens: 200,
    },
  };
}

const terms = (n: number): string[] => Array.from({ length: n }, (_, i) => `word${i}`);

/** The card inside an answer line's chat completion. */
function cardOf(r: ResultLine): { front: string; back: string } {
  const body = r.body as { choices: { message: { content: string } }[] };
  return JSON.parse(body.choices[0]?.message.content ?? 'null') as { front: string; back: string };
}

async function withMock(
  options: MockOptions,
  run: (ctx: {
    server: MockServer;
    clock: FakeClock;
    api: ReturnType<typeof openaiBatchApi>;
    signal: AbortSignal;
  }) => Promise<void>,
): Promise<void> {
  const clock = new FakeClock();
  const server = await startMockServer({ clock, ...options });
  try {
    const api = openaiBatchApi({ baseUrl: server.url, apiKey: KEY, timeoutMs: 30_000 });
    await run({ server, clock, api, signal: new AbortController().signal });
  } finally {
    await server.close();
  }
}

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isProviderError(e), `expected a ProviderError, got ${String(e)}`);
    return e as ProviderError;
  }
  assert.fail('expected a rejection');
}

describe('OpenAI batch API adapter against the mock', () => {
  test('uploads, creates, follows the batch to completed, downloads and parses schema-valid answers', async () => {
    await withMock(
      { batchCompleteAfterMs: 60_000, requireAuth: true },
      async ({ server, clock, api, signal }) => {
        const words = terms(3);
        const fileId = await api.upload('flashcards-run1-part1.jsonl', words.map(line), signal);
        assert.deepEqual(server.batch.uploads, [
          {
            fileId,
            fileName: 'flashcards-run1-part1.jsonl',
            lines: 3,
            customIds: words.map((w) => `item-${w}`),
          },
        ]);
        const created = await api.create(fileId, { flashcards_tag: 'run1-part1' }, signal);
        assert.equal(created.state, 'validating');
        assert.deepEqual(created.metadata, { flashcards_tag: 'run1-part1' });
        assert.equal(created.createdAt, Math.floor(clock.now() / 1000));
        assert.equal(server.batch.linesSubmitted, 3);

        await clock.advance(20_000);
        const running = await api.status(created.id, signal);
        assert.equal(running.state, 'in_progress');
        assert.deepEqual(running.counts, { total: 3, completed: 1, failed: 0 });
        assert.equal(running.outputFileId, undefined);

        await clock.advance(40_000);
        const done = await api.status(created.id, signal);
        assert.equal(done.state, 'completed');
        assert.deepEqual(done.counts, { total: 3, completed: 3, failed: 0 });
        assert.equal(done.errorFileId, undefined);
        assert.ok(done.outputFileId);
        assert.deepEqual(
          server.batch.polls.map((p) => p.state),
          ['in_progress', 'completed'],
        );

        const parsed = api.parseResults(await api.download(done.outputFileId, signal));
        assert.equal(parsed.unreadable, 0);
        assert.deepEqual(
          parsed.lines.map((l) => [l.customId, l.statusCode, l.error]),
          words.map((w) => [`item-${w}`, 200, undefined]),
        );
        assert.deepEqual(
          parsed.lines.map((l) => cardOf(l).front),
          words,
        );
        // Every call carried the key as a bearer token (requireAuth would have refused it otherwise).
        assert.ok(server.requests.every((r) => r.headers.authorization === `Bearer ${KEY}`));
      },
    );
  });

  test('shuffled output lines join back to their requests by custom_id', async () => {
    await withMock({ batchShuffle: true, seed: 3 }, async ({ api, signal }) => {
      const words = terms(12);
      const fileId = await api.upload('shuffled.jsonl', words.map(line), signal);
      const batch = await api.status((await api.create(fileId, { flashcards_tag: 't' }, signal)).id, signal);
      assert.equal(batch.state, 'completed');
      const { lines } = api.parseResults(await api.download(batch.outputFileId ?? '', signal));
      const order = lines.map((l) => l.customId);
      assert.notDeepEqual(
        order,
        words.map((w) => `item-${w}`),
      );
      assert.deepEqual([...order].sort(), words.map((w) => `item-${w}`).sort());
      for (const l of lines) assert.equal(`item-${cardOf(l).front}`, l.customId);
    });
  });

  test('lines that failed come in the error file with their status and the provider message', async () => {
    await withMock({ batchErrorRate: 0.5, seed: 7 }, async ({ api, signal }) => {
      const words = terms(20);
      const fileId = await api.upload('errors.jsonl', words.map(line), signal);
      const batch = await api.status((await api.create(fileId, { flashcards_tag: 'e' }, signal)).id, signal);
      assert.equal(batch.state, 'completed');
      assert.ok(batch.outputFileId && batch.errorFileId);
      const ok = api.parseResults(await api.download(batch.outputFileId, signal)).lines;
      const failed = api.parseResults(await api.download(batch.errorFileId, signal)).lines;
      assert.ok(failed.length > 0 && ok.length > 0);
      assert.deepEqual(batch.counts, { total: 20, completed: ok.length, failed: failed.length });
      assert.deepEqual(
        [...ok, ...failed].map((l) => l.customId).sort(),
        words.map((w) => `item-${w}`).sort(),
      );
      for (const l of failed) {
        assert.equal(l.statusCode, 500);
        assert.deepEqual(l.error, {
          code: 'http_500',
          message: 'The server had an error while processing your request.',
        });
      }
    });
  });

  test('an expired batch has the part answered in time in its output and the rest as batch_expired', async () => {
    await withMock(
      { batchCompleteAfterMs: 100_000, batchExpireAfterMs: 25_000 },
      async ({ clock, api, signal }) => {
        const fileId = await api.upload('expire.jsonl', terms(8).map(line), signal);
        const created = await api.create(fileId, { flashcards_tag: 'x' }, signal);
        await clock.advance(25_000);
        const batch = await api.status(created.id, signal);
        assert.equal(batch.state, 'expired');
        assert.deepEqual(batch.counts, { total: 8, completed: 2, failed: 6 });
        const answered = api.parseResults(await api.download(batch.outputFileId ?? '', signal)).lines;
        assert.deepEqual(
          answered.map((l) => l.customId),
          ['item-word0', 'item-word1'],
        );
        const expired = api.parseResults(await api.download(batch.errorFileId ?? '', signal)).lines;
        assert.equal(expired.length, 6);
        assert.ok(expired.every((l) => l.statusCode === 0 && l.error?.code === 'batch_expired'));
      },
    );
  });

  test('findUpload finds an upload that was never turned into a batch, by its file name', async () => {
    await withMock({}, async ({ api, signal }) => {
      const first = await api.upload('run7-part1.jsonl', terms(2).map(line), signal);
      await api.upload('run7-part2.jsonl', terms(1).map(line), signal);
      assert.equal(await api.findUpload('run7-part1.jsonl', signal), first);
      assert.equal(await api.findUpload('run8-part1.jsonl', signal), undefined);
    });
  });

  test('findBatch pages through the batch list to the batch with its tag', async () => {
    await withMock({ batchCompleteAfterMs: 1_000_000 }, async ({ server, api, signal }) => {
      const fileId = await api.upload('many.jsonl', terms(1).map(line), signal);
      const tagged = await api.create(fileId, { flashcards_tag: 'run9-part1' }, signal);
      for (let i = 0; i < 105; i++) await api.create(fileId, { flashcards_tag: `other-${i}` }, signal);
      server.clear();
      const found = await api.findBatch('run9-part1', signal);
      assert.equal(found?.id, tagged.id);
      assert.deepEqual(found?.metadata, { flashcards_tag: 'run9-part1' });
      assert.deepEqual(
        server.requests.map((r) => r.path),
        ['/v1/batches?limit=100', `/v1/batches?limit=100&after=batch_mock_7`],
      );
      assert.equal(await api.findBatch('run9-part2', signal), undefined);
    });
  });

  test('a create whose reply was lost is found again by its tag once the provider carried it out', async () => {
    await withMock({ batchHoldCreate: true }, async ({ server, api, signal }) => {
      const fileId = await api.upload('lost.jsonl', terms(2).map(line), signal);
      const client = new AbortController();
      const creating = api.create(fileId, { flashcards_tag: 'lost-1' }, client.signal);
      await server.until(() => server.batch.heldCreates === 1);
      // Killed between upload and create: no batch yet, the upload is there to be reused.
      assert.equal(await api.findBatch('lost-1', signal), undefined);
      assert.equal(await api.findUpload('lost.jsonl', signal), fileId);
      client.abort();
      const e = await rejection(creating);
      assert.equal(e.kind, 'cancelled');
      server.set({ batchHoldCreate: false });
      await server.until(() => server.batch.batches.length === 1);
      const found = await api.findBatch('lost-1', signal);
      assert.equal(found?.id, server.batch.batches[0]?.id);
      assert.equal(server.batch.linesSubmitted, 2);
    });
  });

  test('each call times out on the adapter clock', async () => {
    await withMock({ batchHoldCreate: true }, async ({ server, signal }) => {
      const clock = new FakeClock();
      const api = openaiBatchApi({ baseUrl: server.url, apiKey: KEY, timeoutMs: 5_000, clock });
      const fileId = await api.upload('slow.jsonl', terms(1).map(line), signal);
      const creating = rejection(api.create(fileId, { flashcards_tag: 'slow' }, signal));
      await server.until(() => server.batch.heldCreates === 1);
      await clock.advance(5_000);
      const e = await creating;
      assert.equal(e.kind, 'timeout');
      assert.equal(e.retryable, true);
      assert.match(e.message, /timed out after 5 s/);
      server.set({ batchHoldCreate: false });
    });
  });

  test('cancel stops a running batch; what was answered by then is in its output', async () => {
    await withMock({ batchCompleteAfterMs: 100_000 }, async ({ server, clock, api, signal }) => {
      const fileId = await api.upload('cancel.jsonl', terms(8).map(line), signal);
      const created = await api.create(fileId, { flashcards_tag: 'c' }, signal);
      await clock.advance(50_000);
      const cancelling = await api.cancel(created.id, signal);
      assert.equal(cancelling.state, 'cancelling');
      assert.deepEqual(server.batch.cancels, [created.id]);
      const cancelled = await api.status(created.id, signal);
      assert.equal(cancelled.state, 'cancelled');
      assert.deepEqual(cancelled.counts, { total: 8, completed: 4, failed: 0 });
      const { lines } = api.parseResults(await api.download(cancelled.outputFileId ?? '', signal));
      assert.equal(lines.length, 4);
      // A finished batch cannot be cancelled: the provider says so and nothing is retried.
      const done = await api.create(fileId, { flashcards_tag: 'd' }, signal);
      await clock.advance(100_000);
      assert.equal((await api.status(done.id, signal)).state, 'completed');
      const e = await rejection(api.cancel(done.id, signal));
      assert.equal(e.kind, 'bad_request');
    });
  });

  test('a provider without a batch API is a clear usage error (exit 2) that names it', async () => {
    await withMock({ batchApi: false }, async ({ server, api, signal }) => {
      const calls = [
        () => api.upload('x.jsonl', terms(1).map(line), signal),
        () => api.findUpload('x.jsonl', signal),
        () => api.create('file-1', { flashcards_tag: 'x' }, signal),
        () => api.findBatch('x', signal),
      ];
      for (const call of calls) {
        const e = await rejection(call());
        assert.equal(e.kind, 'bad_request');
        assert.equal(e.exitCode, 2);
        assert.equal(e.retryable, false);
        assert.match(
          e.message,
          new RegExp(`^OpenAI batch API at ${server.url}: .* the provider has no batch API$`),
        );
      }
    });
  });

  test('an unknown batch id is a 404 about that batch, not about the API', async () => {
    await withMock({}, async ({ api, signal }) => {
      const e = await rejection(api.status('batch_nope', signal));
      assert.equal(e.kind, 'bad_request');
      assert.equal(e.exitCode, 1);
      assert.equal(e.status, 404);
      assert.match(
        e.message,
        /^GET \/batches\/batch_nope: provider returned HTTP 404 Not Found: No such Batch object/,
      );
    });
  });

  test('create over the enqueued token limit is a recognisable, retryable 429', async () => {
    await withMock(
      { batchEnqueuedTokenLimit: 60, batchCompleteAfterMs: 10_000 },
      async ({ server, clock, api, signal }) => {
        const fileId = await api.upload('queued.jsonl', terms(4).map(line), signal);
        await api.create(fileId, { flashcards_tag: 'q1' }, signal);
        const e = await rejection(api.create(fileId, { flashcards_tag: 'q2' }, signal));
        assert.equal(e.kind, 'rate_limit');
        assert.equal(e.status, 429);
        assert.equal(e.retryable, true);
        assert.ok(isEnqueuedLimitError(e));
        assert.match(e.message, /enqueued token limit reached/i);
        assert.equal(server.batch.enqueuedRefusals, 1);
        // Once the first batch is done its tokens no longer count.
        await clock.advance(10_000);
        const second = await api.create(fileId, { flashcards_tag: 'q2' }, signal);
        assert.equal(second.metadata['flashcards_tag'], 'q2');
      },
    );
  });

  test('a refused key is an auth error whose message never carries the key', async () => {
    await withMock({ status401: true }, async ({ api, signal }) => {
      const e = await rejection(api.upload('k.jsonl', terms(1).map(line), signal));
      assert.equal(e.kind, 'auth');
      assert.equal(e.exitCode, 3);
      assert.ok(!e.message.includes(KEY) && !String(e.hint).includes(KEY));
      assert.ok(!isEnqueuedLimitError(e));
    });
  });
});

describe('parseResults', () => {
  const api = openaiBatchApi({ baseUrl: 'http://127.0.0.1:9/v1', apiKey: undefined, timeoutMs: 1_000 });

  test('skips and counts lines that are not JSON objects with a custom_id; blank lines are not lines', () => {
    const answer = {
      id: 'batch_req_1',
      custom_id: 'a',
      response: { status_code: 200, request_id: 'req_1', body: { choices: [] } },
      error: null,
    };
    const text = [
      JSON.stringify(answer),
      '{"custom_id": "b", "response": {"status_code": 200, "bo', // cut off
      '',
      JSON.stringify({ id: 'x', response: null, error: null }),
      '[1, 2]',
      `${JSON.stringify({ custom_id: 'c', response: { status_code: 429, body: { error: { message: 'slow down', code: 'rate_limit_exceeded' } } }, error: null })}\r`,
      JSON.stringify({
        custom_id: 'd',
        response: null,
        error: { code: 'batch_expired', message: 'too late' },
      }),
    ].join('\n');
    const { lines, unreadable } = api.parseResults(text);
    assert.equal(unreadable, 3);
    assert.deepEqual(lines, [
      { customId: 'a', statusCode: 200, body: { choices: [] }, error: undefined },
      {
        customId: 'c',
        statusCode: 429,
        body: { error: { message: 'slow down', code: 'rate_limit_exceeded' } },
        error: { code: 'rate_limit_exceeded', message: 'slow down' },
      },
      {
        customId: 'd',
        statusCode: 0,
        body: undefined,
        error: { code: 'batch_expired', message: 'too late' },
      },
    ]);
  });
});

describe('error classification', () => {
  test('a 404 on create naming a missing file is about that file, not a missing batch API', async () => {
    const transport: Transport = async () => ({
      status: 404,
      headers: { get: () => null },
      text: async () => JSON.stringify({ error: { message: 'No such File object: file-x', code: null } }),
    });
    const api = openaiBatchApi({
      baseUrl: 'http://127.0.0.1:9/v1',
      apiKey: KEY,
      timeoutMs: 1_000,
      transport,
    });
    const e = await rejection(api.create('file-x', { flashcards_tag: 't' }, new AbortController().signal));
    assert.equal(e.kind, 'bad_request');
    assert.equal(e.exitCode, 1);
    assert.match(
      e.message,
      /^POST \/batches: provider returned HTTP 404 Not Found: No such File object: file-x$/,
    );
  });
});
