import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type ChatRequest,
  createChatClient,
  parseCompletion,
  RequestEncoder,
} from '../src/client/chat-client.ts';
import { fetchTransport, nodeTransport } from '../src/client/transport.ts';
import { isProviderError, type ProviderError } from '../src/core/errors.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

/** The body as plain JSON.stringify would write it. */
function requestBody(request: ChatRequest): Record<string, unknown> {
  return {
    model: request.model,
    messages: request.messages,
    response_format: request.responseFormat,
    temperature: request.temperature,
    max_tokens: request.maxTokens,
  };
}

const schema = {
  type: 'object',
  properties: { front: { type: 'string' } },
  required: ['front'],
  additionalProperties: false,
};
const request: ChatRequest = {
  model: 'm',
  messages: [
    { role: 'system', content: 'be "brief"\n' },
    { role: 'user', content: 'Term: 사과' },
  ],
  responseFormat: { type: 'json_schema', json_schema: { name: 'cards', strict: true, schema } },
  temperature: 0.3,
  maxTokens: 500,
};

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isProviderError(e), `expected a ProviderError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a failure');
}

describe('request and response bodies', () => {
  test('the encoded body equals JSON.stringify of the request body, also from its caches', () => {
    const encoder = new RequestEncoder();
    const text = (r: ChatRequest): string => Buffer.concat(encoder.encode(r)).toString('utf8');
    assert.equal(text(request), JSON.stringify(requestBody(request)));
    assert.equal(text(request), JSON.stringify(requestBody(request)), 'and again from the caches');
    const other = { ...request, model: 'n', temperature: 0, maxTokens: 7 };
    assert.equal(text(other), JSON.stringify(requestBody(other)), 'model and parameters change');
    const longer = { ...request, messages: [...request.messages, { role: 'user' as const, content: '2' }] };
    assert.equal(text(longer), JSON.stringify(requestBody(longer)), 'a shared message among new ones');
  });

  test('parses content and usage; estimates usage when the provider sends none', () => {
    const body = JSON.stringify({
      choices: [{ message: { content: '{"front":"x"}' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
    assert.deepEqual(
      parseCompletion(body, () => 99),
      {
        content: '{"front":"x"}',
        usage: { promptTokens: 10, completionTokens: 5, totalTokens: 15 },
        usageEstimated: false,
      },
    );
    const bare = parseCompletion(
      JSON.stringify({ choices: [{ message: { content: '{"a":1}' } }] }),
      () => 10,
    );
    assert.deepEqual(bare.usage, { promptTokens: 10, completionTokens: 2, totalTokens: 12 });
    assert.equal(bare.usageEstimated, true);
  });

  test('without usage from the provider, the prompt estimate counts the messages and the schema', async () => {
    const client = createChatClient({
      baseUrl: 'http://127.0.0.1:1/v1',
      apiKey: undefined,
      timeoutMs: 5000,
      transport: fetchTransport(async () =>
        Response.json({ choices: [{ message: { content: '{"front":"x"}' }, finish_reason: 'stop' }] }),
      ),
    });
    const result = await client.complete(request, new AbortController().signal);
    const chars =
      request.messages.reduce((n, m) => n + m.content.length, 0) +
      JSON.stringify(request.responseFormat).length;
    assert.equal(result.usageEstimated, true);
    assert.ok(
      Math.abs(result.usage.promptTokens - chars / 4) <= 2,
      `${result.usage.promptTokens} tokens for ${chars} characters`,
    );
  });

  test('strips a Markdown fence around the JSON', () => {
    const body = JSON.stringify({ choices: [{ message: { content: '```json\n{"a":1}\n```' } }] });
    assert.equal(parseCompletion(body, () => 0).content, '{"a":1}');
  });

  const broken: [string, string, RegExp][] = [
    ['truncated JSON', '{"choices":[{"mess', /not valid JSON/],
    ['no choices', '{"id":"x"}', /no choices\[0\]\.message\.content/],
    [
      'an answer cut at max_tokens',
      JSON.stringify({ choices: [{ message: { content: '{"a"' }, finish_reason: 'length' }] }),
      /max_tokens/,
    ],
    ['a refusal', JSON.stringify({ choices: [{ message: { content: null, refusal: 'no' } }] }), /refused/],
  ];
  for (const [what, body, message] of broken) {
    test(`${what} is an invalid_response, retryable`, () => {
      try {
        parseCompletion(body, () => 0);
        assert.fail('should throw');
      } catch (e) {
        assert.ok(isProviderError(e));
        assert.equal(e.kind, 'invalid_response');
        assert.equal(e.retryable, true);
        assert.match(e.message, message);
      }
    });
  }
});

describe('the client against the mock provider over node:http', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer({ seed: 3, requireAuth: true });
  });
  after(async () => {
    await server.close();
  });

  test('sends Bearer auth and the json_schema response format, and reads the rate-limit headers once', async () => {
    server.set({ rpm: 6000 });
    try {
      const client = createChatClient({ baseUrl: server.url, apiKey: 'sk-abc', timeoutMs: 5000 });
      const result = await client.complete(request, new AbortController().signal);
      assert.deepEqual(JSON.parse(result.content).front !== undefined, true);
      assert.ok(result.usage.totalTokens > 0);
      assert.equal(result.status, 200);
      assert.equal(result.rateLimit.limitRequests, 6000, 'the limit the provider announced');
      assert.equal(typeof result.rateLimit.remainingRequests, 'number');
      const last = server.requests.at(-1)!;
      assert.equal(last.headers['authorization'], 'Bearer sk-abc');
      assert.deepEqual((last.body as { response_format: unknown }).response_format, request.responseFormat);
    } finally {
      server.set({ rpm: 0 });
    }
  });

  test('an error carries the rate-limit headers and Retry-After of its response, read once', async () => {
    server.set({ rpm: 1, burstSeconds: 1 });
    try {
      const client = createChatClient({ baseUrl: server.url, apiKey: 'sk-abc', timeoutMs: 5000 });
      await client.complete(request, new AbortController().signal);
      const e = await failure(client.complete(request, new AbortController().signal));
      assert.equal(e.kind, 'rate_limit');
      assert.equal(e.rateLimit?.limitRequests, 1);
      assert.ok((e.retryAfterMs ?? 0) > 0);
      assert.equal(e.retryAfterMs, e.rateLimit?.retryAfterMs, 'the retry and the limiter see one value');
    } finally {
      server.set({ rpm: 0 });
    }
  });

  test('a hanging provider is a retryable timeout', async () => {
    server.set({ hang: 1 });
    try {
      const client = createChatClient({ baseUrl: server.url, apiKey: 'k', timeoutMs: 150 });
      const e = await failure(client.complete(request, new AbortController().signal));
      assert.equal(e.kind, 'timeout');
      assert.equal(e.retryable, true);
    } finally {
      server.set({ hang: 0 });
    }
  });

  test('a connection reset is a retryable network error', async () => {
    server.set({ reset: 1 });
    try {
      const client = createChatClient({
        baseUrl: server.url,
        apiKey: 'k',
        timeoutMs: 2000,
        transport: nodeTransport(),
      });
      const e = await failure(client.complete(request, new AbortController().signal));
      assert.equal(e.kind, 'network');
      assert.equal(e.retryable, true);
    } finally {
      server.set({ reset: 0 });
    }
  });

  test('a 401 is an auth error that is not retried', async () => {
    const client = createChatClient({ baseUrl: server.url, apiKey: undefined, timeoutMs: 2000 });
    const e = await failure(client.complete(request, new AbortController().signal));
    assert.equal(e.kind, 'auth');
    assert.equal(e.retryable, false);
  });

  test('cancelling the run cancels the request', async () => {
    server.set({ hang: 1 });
    try {
      const client = createChatClient({ baseUrl: server.url, apiKey: 'k', timeoutMs: 10_000 });
      const stop = new AbortController();
      server.clear();
      const pending = failure(client.complete(request, stop.signal));
      // Cancelled while the provider holds the request, not before it was sent.
      await server.until(() => server.requests[0]?.fault === 'hang');
      stop.abort();
      const e = await pending;
      assert.equal(e.kind, 'cancelled');
    } finally {
      server.set({ hang: 0 });
    }
  });
});

describe('content shapes some gateways send', () => {
  test('content as an array of text parts is joined', () => {
    const body = JSON.stringify({
      choices: [
        {
          message: {
            content: [
              { type: 'text', text: '{"a":' },
              { type: 'text', text: '1}' },
            ],
          },
        },
      ],
    });
    assert.equal(parseCompletion(body, () => 0).content, '{"a":1}');
  });
});
