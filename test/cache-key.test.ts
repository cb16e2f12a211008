import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CACHE_SCHEMA_VERSION,
  type CacheKeyInput,
  cacheKey,
  cacheKeyer,
  canonicalJson,
} from '../src/cache/index.ts';

const base: CacheKeyInput = {
  baseUrl: 'https://api.example.com/v1',
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You write Korean flashcards.' },
    { role: 'user', content: '사과' },
  ],
  responseFormat: {
    type: 'json_schema',
    json_schema: { name: 'card', schema: { type: 'object', required: ['word'] } },
  },
  params: { temperature: 0.2, top_p: 1, max_tokens: 800, seed: 7 },
};

describe('canonicalJson', () => {
  test('sorts object keys recursively and keeps array order', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  test('drops undefined members like JSON.stringify and writes undefined array slots as null', () => {
    assert.equal(canonicalJson({ a: undefined, b: [undefined, 1] }), '{"b":[null,1]}');
  });

  test('escapes strings exactly like JSON.stringify, unicode included', () => {
    assert.equal(canonicalJson({ 한국어: '사과 "apple"\n' }), '{"한국어":"사과 \\"apple\\"\\n"}');
  });

  test('writes non-finite numbers as null and honours toJSON', () => {
    assert.equal(
      canonicalJson([Number.NaN, Number.POSITIVE_INFINITY, new Date(0)]),
      '[null,null,"1970-01-01T00:00:00.000Z"]',
    );
  });

  test('refuses a bigint, naming where it is', () => {
    assert.throws(() => canonicalJson({ params: { seed: 1n } }), /bigint at top\.params\.seed/);
  });
});

describe('cacheKey', () => {
  test('is 64 lowercase hex characters', () => {
    assert.match(cacheKey(base), /^[0-9a-f]{64}$/);
  });

  test('is the same for inputs that differ only in key order, at every depth', () => {
    const reordered: CacheKeyInput = {
      params: { seed: 7, max_tokens: 800, top_p: 1, temperature: 0.2 },
      responseFormat: {
        json_schema: { schema: { required: ['word'], type: 'object' }, name: 'card' },
        type: 'json_schema',
      },
      messages: [
        { content: 'You write Korean flashcards.', role: 'system' },
        { content: '사과', role: 'user' },
      ],
      model: 'gpt-4o-mini',
      baseUrl: 'https://api.example.com/v1',
    };
    assert.equal(cacheKey(reordered), cacheKey(base));
  });

  test('changes with every answer-changing part of the request', () => {
    const variants: Record<string, CacheKeyInput> = {
      baseUrl: { ...base, baseUrl: 'https://other.example.com/v1' },
      model: { ...base, model: 'gpt-4o' },
      message: { ...base, messages: [{ role: 'user', content: '배' }] },
      messageOrder: { ...base, messages: [...(base.messages as unknown[])].reverse() },
      responseFormat: { ...base, responseFormat: { type: 'json_object' } },
      schema: {
        ...base,
        responseFormat: {
          type: 'json_schema',
          json_schema: { name: 'card', schema: { type: 'object', required: [] } },
        },
      },
      temperature: { ...base, params: { ...base.params, temperature: 0.3 } },
      topP: { ...base, params: { ...base.params, top_p: 0.9 } },
      maxTokens: { ...base, params: { ...base.params, max_tokens: 801 } },
      seed: { ...base, params: { ...base.params, seed: 8 } },
      newParam: { ...base, params: { ...base.params, presence_penalty: 0.5 } },
    };
    const keys = new Set([cacheKey(base), ...Object.values(variants).map(cacheKey)]);
    assert.equal(keys.size, Object.keys(variants).length + 1);
  });

  test('ignores timeout and API key if they reach params', () => {
    const noisy = {
      ...base,
      params: { ...base.params, timeout: 30_000, timeoutMs: 5000, apiKey: 'sk-1', api_key: 'sk-2' },
    };
    assert.equal(cacheKey(noisy), cacheKey(base));
  });

  test('treats a trailing slash on the base URL as the same endpoint', () => {
    assert.equal(cacheKey({ ...base, baseUrl: 'https://api.example.com/v1/' }), cacheKey(base));
  });

  test('treats an undefined parameter as an absent one', () => {
    assert.equal(cacheKey({ ...base, params: { ...base.params, stop: undefined } }), cacheKey(base));
  });

  test('hashes the canonical JSON of the request with the cache schema version', () => {
    assert.equal(CACHE_SCHEMA_VERSION, 1);
    // sha256 of {"baseUrl":"u","messages":[],"model":"m","params":{},"responseFormat":null,"v":1}
    assert.equal(
      cacheKey({ baseUrl: 'u', model: 'm', messages: [], responseFormat: null, params: {} }),
      '8c76106b590cc5ff74962745a0a77f97fa53dda1f14cd5d70042ec0f50e0a3fb',
    );
  });
});

describe('cacheKeyer', () => {
  const fixed = {
    baseUrl: 'https://api.example.com/v1/',
    model: 'm',
    responseFormat: { type: 'json_schema', strict: true, schema: 'abc123' },
    params: { temperature: 0.3, max_tokens: 500, timeout: 9 },
  };
  test('gives exactly the digest of cacheKey for the same request', () => {
    const keyer = cacheKeyer(fixed);
    const cases = [
      [],
      [{ role: 'user', content: 'Term: 사과 "quoted"\n\u0000' }],
      [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: '{"a":1}' },
      ],
    ];
    for (const messages of cases) assert.equal(keyer(messages), cacheKey({ ...fixed, messages }));
  });

  test('a shared system message (remembered as bytes) keys as written, non-ASCII included', () => {
    const keyer = cacheKeyer(fixed);
    const system = { role: 'system', content: '한국어 카드만 — "be brief"' };
    for (const term of ['사과', '배']) {
      const messages = [system, { role: 'user', content: term }];
      assert.equal(keyer(messages), cacheKey({ ...fixed, messages }));
    }
  });

  test('falls back to the generic serialiser for messages with other fields', () => {
    const messages = [{ role: 'user', content: 'x', name: 'n' }];
    assert.equal(cacheKeyer(fixed)(messages), cacheKey({ ...fixed, messages }));
  });
});
