import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { createMockFetch, extractTerm } from '../src/client/mock-fetch.ts';
import { FakeClock } from '../src/core/clock.ts';
import { formatResetDuration, type MockServer, startMockServer } from './support/mock-server.ts';

const card = z.strictObject({
  front: z.string(),
  back: z.string(),
  examples: z
    .array(z.strictObject({ sentence: z.string(), translation: z.string() }))
    .min(1)
    .max(3),
  tags: z.array(z.string()).max(5),
});
const cardSchema = z.toJSONSchema(card, { target: 'draft-2020-12' });

function chatBody(term: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: 'gpt-test',
    messages: [
      { role: 'system', content: 'You write flashcards.' },
      { role: 'user', content: `Make a card.\n\nTerm: ${term}\n` },
    ],
    response_format: { type: 'json_schema', json_schema: { name: 'card', strict: true, schema: cardSchema } },
    ...extra,
  };
}

function post(
  server: MockServer,
  body: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${server.url}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: JSON.stringify(body),
    signal: init.signal ?? null,
  });
}

interface Completion {
  model: string;
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

function contentOf(completion: Completion): unknown {
  return JSON.parse(completion.choices[0]?.message.content ?? 'null');
}

const rateHeaderNames = [
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
];

function rateHeaders(res: Response): Record<string, string | null> {
  return Object.fromEntries(rateHeaderNames.map((h) => [h, res.headers.get(h)]));
}

describe('mock server', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer();
  });
  after(() => server.close());

  test('answers a chat completion with schema-valid content, usage and the model echoed', async () => {
    const res = await post(server, chatBody('gato'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as Completion;
    assert.equal(body.model, 'gpt-test');
    const value = card.parse(contentOf(body));
    assert.equal(value.front, 'gato');
    assert.ok(value.examples.every((e) => e.sentence.includes('gato')));
    assert.ok(!value.back.startsWith('[mock]'));
    const content = body.choices[0]?.message.content ?? '';
    assert.equal(body.usage.completion_tokens, Math.ceil(content.length / 4));
    assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
    const promptChars = 'You write flashcards.'.length + 'Make a card.\n\nTerm: gato\n'.length;
    assert.equal(body.usage.prompt_tokens, Math.ceil(promptChars / 4));
  });

  test('answers the same term the same way, and serves /models with or without /v1', async () => {
    const a = (await (await post(server, chatBody('perro'))).json()) as Completion;
    const b = (await (await post(server, chatBody('perro'))).json()) as Completion;
    assert.equal(a.choices[0]?.message.content, b.choices[0]?.message.content);
    for (const url of [`${server.url}/models`, server.url.replace('/v1', '/models')]) {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.deepEqual(
        ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id),
        ['mock'],
      );
    }
    const res = await fetch(server.url.replace('/v1', '/chat/completions'), {
      method: 'POST',
      body: JSON.stringify(chatBody('perro')),
    });
    assert.equal(res.status, 200);
    const unknown = await fetch(`${server.url}/embeddings`, { method: 'POST', body: '{}' });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'unknown_url');
  });

  test('records every request with its headers, parsed body and status', async () => {
    server.clear();
    const res = await post(server, chatBody('casa'), { headers: { authorization: 'Bearer sk-test' } });
    await res.arrayBuffer();
    assert.equal(server.requests.length, 1);
    const r = server.requests[0];
    assert.ok(r);
    assert.equal(r.method, 'POST');
    assert.equal(r.path, '/v1/chat/completions');
    assert.equal(r.headers.authorization, 'Bearer sk-test');
    assert.equal((r.body as { model: string }).model, 'gpt-test');
    assert.equal(r.status, 200);
    assert.deepEqual(server.stats.byStatus, { 200: 1 });
    assert.equal(server.stats.total, 1);
  });

  test('requireAuth answers 401 without a bearer token and 200 with one', async () => {
    server.set({ requireAuth: true });
    try {
      const denied = await post(server, chatBody('casa'));
      assert.equal(denied.status, 401);
      assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
      const allowed = await post(server, chatBody('casa'), { headers: { authorization: 'Bearer x' } });
      assert.equal(allowed.status, 200);
      await allowed.arrayBuffer();
    } finally {
      server.set({ requireAuth: false });
    }
  });

  test('an outage switched on at runtime answers 503 until switched off', async () => {
    server.set({ outage: true });
    const during = await post(server, chatBody('sol'));
    assert.equal(during.status, 503);
    await during.arrayBuffer();
    server.set({ outage: false });
    const afterwards = await post(server, chatBody('sol'));
    assert.equal(afterwards.status, 200);
    await afterwards.arrayBuffer();
  });

  test('forced 401, insufficient quota and 500 answers carry OpenAI-shaped errors', async () => {
    const expect = async (status: number, type: string): Promise<void> => {
      const res = await post(server, chatBody('luna'));
      assert.equal(res.status, status);
      assert.equal(((await res.json()) as { error: { type: string } }).error.type, type);
    };
    server.set({ status401: true });
    await expect(401, 'invalid_request_error');
    server.set({ status401: false, quota: true });
    await expect(429, 'insufficient_quota');
    server.set({ quota: false, error500: 1 });
    await expect(500, 'server_error');
    server.set({ error500: 0, error503: 1 });
    await expect(503, 'server_error');
    server.set({ error503: 0 });
  });

  test('a truncated answer is a 200 whose body is not valid JSON', async () => {
    server.set({ truncated: 1 });
    try {
      const res = await post(server, chatBody('mar'));
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(text.startsWith('{"id":"chatcmpl-mock-'));
      assert.throws(() => JSON.parse(text), SyntaxError);
    } finally {
      server.set({ truncated: 0 });
    }
  });

  test('an invalid-schema answer is valid JSON content that fails the schema', async () => {
    server.set({ invalidSchema: 1 });
    try {
      const res = await post(server, chatBody('mar'));
      assert.equal(res.status, 200);
      const value = contentOf((await res.json()) as Completion);
      assert.equal(card.safeParse(value).success, false);
      assert.equal((value as Record<string, unknown>)['front'], undefined);
    } finally {
      server.set({ invalidSchema: 0 });
    }
  });

  test('a reset makes fetch fail, before or during the body, and is recorded with status 0', async () => {
    server.set({ reset: 1 });
    server.clear();
    try {
      for (let i = 0; i < 6; i++) {
        await assert.rejects(async () => {
          const res = await post(server, chatBody('rio'));
          await res.text();
        }, TypeError);
      }
      assert.deepEqual(
        server.requests.map((r) => [r.status, r.fault]),
        Array.from({ length: 6 }, () => [0, 'reset']),
      );
    } finally {
      server.set({ reset: 0 });
    }
  });

  test('a hanging request is cut by the client timeout and leaves nothing in flight', async () => {
    server.set({ hang: 1 });
    server.clear();
    try {
      const client = new AbortController();
      const pending = post(server, chatBody('nube'), { signal: client.signal });
      await server.until(() => server.requests[0]?.fault === 'hang');
      // What AbortSignal.timeout() does when it fires, fired once the request is known to hang.
      client.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
      await assert.rejects(pending, { name: 'TimeoutError' });
      assert.equal(server.requests[0]?.status, 0);
      await server.until(() => server.stats.inFlight === 0);
      assert.equal(server.stats.inFlight, 0);
    } finally {
      server.set({ hang: 0 });
    }
  });

  test('fault rates are drawn from the seed: the same seed gives the same sequence', async () => {
    const run = async (): Promise<number[]> => {
      server.set({ seed: 42, error500: 0.5 });
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const res = await post(server, chatBody('pan'));
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      return statuses;
    };
    const first = await run();
    assert.deepEqual(await run(), first);
    assert.ok(first.includes(500) && first.includes(200), first.join(','));
    server.set({ error500: 0 });
  });
});

describe('mock server rate limiting', () => {
  test('a burst past the RPM bucket gets 429 with Retry-After, retry-after-ms and headers', async () => {
    const clock = new FakeClock();
    const server = await startMockServer({ clock, rpm: 120, burstSeconds: 1 });
    try {
      const first = await post(server, chatBody('uno'));
      assert.equal(first.status, 200);
      await first.arrayBuffer();
      const second = await post(server, chatBody('uno'));
      assert.equal(second.status, 200);
      assert.deepEqual(rateHeaders(second), {
        'x-ratelimit-limit-requests': '120',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '1s',
        'x-ratelimit-limit-tokens': null,
        'x-ratelimit-remaining-tokens': null,
        'x-ratelimit-reset-tokens': null,
      });
      await second.arrayBuffer();
      await clock.advance(100);
      const limited = await post(server, chatBody('uno'));
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '1');
      assert.equal(limited.headers.get('retry-after-ms'), '400');
      assert.equal(limited.headers.get('x-ratelimit-reset-requests'), '900ms');
      const error = ((await limited.json()) as { error: { message: string; type: string; code: string } })
        .error;
      assert.equal(error.type, 'requests');
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.match(error.message, /^Rate limit reached/);
      await clock.advance(400);
      const again = await post(server, chatBody('uno'));
      assert.equal(again.status, 200);
      await again.arrayBuffer();
      assert.deepEqual(server.stats.byStatus, { 200: 3, 429: 1 });
    } finally {
      await server.close();
    }
  });

  test('TPM limits add the token trio and refuse a request whose tokens do not fit', async () => {
    const clock = new FakeClock();
    const server = await startMockServer({ clock, rpm: 6000, tpm: 60_000, burstSeconds: 1 });
    try {
      // Bucket: 1000 tokens; each request costs its prompt estimate plus max_tokens 600.
      const first = await post(server, chatBody('dos', { max_tokens: 600 }));
      assert.equal(first.status, 200);
      const usage = ((await first.json()) as Completion).usage;
      const cost = usage.prompt_tokens + 600;
      assert.equal(first.headers.get('x-ratelimit-limit-tokens'), '60000');
      assert.equal(first.headers.get('x-ratelimit-remaining-tokens'), String(1000 - cost));
      assert.equal(first.headers.get('x-ratelimit-reset-tokens'), `${cost}ms`);
      const second = await post(server, chatBody('dos', { max_tokens: 600 }));
      assert.equal(second.status, 429);
      assert.equal(second.headers.get('retry-after-ms'), String(cost - (1000 - cost)));
      assert.equal(((await second.json()) as { error: { type: string } }).error.type, 'tokens');
    } finally {
      await server.close();
    }
  });

  test('sendRateLimitHeaders false drops the headers but still answers 429', async () => {
    const server = await startMockServer({ clock: new FakeClock(), rpm: 60, sendRateLimitHeaders: false });
    try {
      const ok = await post(server, chatBody('tres'));
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('x-ratelimit-limit-requests'), null);
      await ok.arrayBuffer();
      const limited = await post(server, chatBody('tres'));
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('x-ratelimit-remaining-requests'), null);
      assert.equal(limited.headers.get('retry-after'), '1');
      await limited.arrayBuffer();
    } finally {
      await server.close();
    }
  });

  test('reset durations use the OpenAI format', () => {
    assert.deepEqual([0, 120, 1000, 1500, 17_280, 360_000, 90_500, 3_723_000].map(formatResetDuration), [
      '0s',
      '120ms',
      '1s',
      '1.5s',
      '17.28s',
      '6m0s',
      '1m30.5s',
      '1h2m3s',
    ]);
  });
});

describe('mock server shutdown', () => {
  test('close() ends hanging requests instead of waiting for them', async () => {
    const server = await startMockServer({ hang: 1 });
    const pending = post(server, chatBody('seis')).then(
      () => 'answered',
      (e: unknown) => e,
    );
    await server.until(() => server.requests[0]?.fault === 'hang');
    assert.equal(server.stats.inFlight, 1);
    await server.close();
    assert.ok((await pending) instanceof TypeError);
    assert.equal(server.stats.inFlight, 0);
  });
});

describe('mock server latency', () => {
  test('answers only after the configured latency has passed on its clock', async () => {
    const clock = new FakeClock();
    const server = await startMockServer({ clock, latencyMs: [50, 150] });
    try {
      let done = false;
      const pending = post(server, chatBody('cuatro')).then((r) => {
        done = true;
        return r;
      });
      await server.until(() => clock.pending > 0);
      assert.equal(clock.pending, 1);
      await clock.advance(49);
      assert.equal(done, false);
      await clock.advance(101);
      const res = await pending;
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await server.close();
    }
  });
});

describe('mock server hold', () => {
  test('held answers wait in flight until released, then arrive as usual', async () => {
    const server = await startMockServer({ hold: true });
    try {
      const arrived: string[] = [];
      const pending = ['uno', 'dos'].map((term) =>
        post(server, chatBody(term)).then(async (r) => {
          arrived.push(term);
          return r.status;
        }),
      );
      await server.until(() => server.stats.held === 2);
      assert.deepEqual(arrived, []);
      assert.deepEqual(
        server.requests.map((r) => r.status),
        [0, 0],
        'nothing answered while held',
      );
      server.set({ hold: false });
      assert.deepEqual(await Promise.all(pending), [200, 200]);
      assert.equal(server.stats.held, 0);
    } finally {
      await server.close();
    }
  });

  test('until() fails the wait, not the request being served, when its check throws', async () => {
    const server = await startMockServer({ hold: true });
    try {
      const pending = post(server, chatBody('cinco'));
      // Throws while the request is being served, like reading its body before it was read.
      const buggy = (): boolean => {
        if (server.requests.length > 0) throw new TypeError('a bug in the check');
        return false;
      };
      await assert.rejects(server.until(buggy), { message: 'a bug in the check' });
      await server.until(() => server.stats.held === 1);
      server.set({ hold: false });
      assert.equal((await pending).status, 200);
    } finally {
      await server.close();
    }
  });

  test('a held request whose client goes away is let go', async () => {
    const server = await startMockServer({ hold: true });
    try {
      const client = new AbortController();
      const pending = post(server, chatBody('tres'), { signal: client.signal });
      await server.until(() => server.stats.held === 1);
      client.abort();
      await assert.rejects(pending, { name: 'AbortError' });
      await server.until(() => server.stats.inFlight === 0);
      assert.equal(server.stats.held, 0);
      assert.equal(server.requests[0]?.status, 0);
    } finally {
      await server.close();
    }
  });
});

describe('standalone runner', () => {
  test('prints its URL on stdout, serves requests and prints stats on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['test/support/mock-server-main.ts', '--port', '0', '--seed', '3'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    const { url } = JSON.parse(line) as { url: string };
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const res = await fetch(`${url}/chat/completions`, {
      method: 'POST',
      body: JSON.stringify(chatBody('cinco')),
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0);
    const {
      tokensServed,
      tokensBooked: _booked,
      ...stats
    } = JSON.parse(stderr) as { tokensServed: number; tokensBooked: number };
    assert.deepEqual(stats, { total: 1, byStatus: { 200: 1 }, inFlight: 0, maxInFlight: 1, held: 0 });
    assert.ok(tokensServed > 0);
  });
});

describe('createMockFetch', () => {
  test('answers a chat completion whose content parses against the schema, marked [mock]', async () => {
    const mockFetch = createMockFetch();
    const res = await mockFetch('https://api.example.invalid/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody('gato')),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Completion;
    const value = card.parse(contentOf(body));
    assert.equal(value.front, '[mock] gato');
    assert.equal(body.model, 'gpt-test');
    assert.ok(body.usage.total_tokens > 0);
  });

  test('lists one model, answers 404 JSON elsewhere and honours an aborted signal', async () => {
    const mockFetch = createMockFetch({ latencyMs: 10_000 });
    const models = await mockFetch('http://localhost/v1/models');
    assert.deepEqual(
      ((await models.json()) as { data: { id: string }[] }).data.map((m) => m.id),
      ['mock'],
    );
    const missing = await mockFetch('http://localhost/v1/completions', { method: 'POST', body: '{}' });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
    const controller = new AbortController();
    const pending = mockFetch('http://localhost/v1/chat/completions', {
      method: 'POST',
      body: JSON.stringify(chatBody('x')),
      signal: controller.signal,
    });
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
  });

  test('finds the term on a Term: line, else the first quoted phrase, else the first word', () => {
    assert.equal(extractTerm('Analyse this.\nTerm: 먹다 \nMore'), '먹다');
    assert.equal(extractTerm('Explain "buenos días" please'), 'buenos días');
    assert.equal(extractTerm('  hola, amigo'), 'hola');
  });
});
