import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ExitCode } from '../src/core/errors.ts';
import { parseRateLimitHeaders, parseRetryAfterMs } from '../src/limiter/headers.ts';
import { classifyFetchError, classifyHttpError, invalidResponseError } from '../src/resilience/index.ts';

const now = Date.UTC(2026, 0, 1, 12, 0, 0);
const none = new Headers();
const openAi = (message: string, type: string, code: string | null): string =>
  JSON.stringify({ error: { message, type, param: null, code } });

describe('parseRetryAfterMs (shared by the limiter and the retry)', () => {
  test('the retry and the limiter read the same wait from the same headers', () => {
    const cases: [string, number][] = [
      ['7', 7000],
      ['1.5', 1500],
      ['2s', 2000],
      ['1500ms', 1500],
      [String(now / 1000 + 30), 30_000],
      [new Date(now + 20_000).toUTCString(), 20_000],
    ];
    for (const [value, ms] of cases) {
      const headers = new Headers({ 'retry-after': value });
      assert.equal(classifyHttpError(429, '{}', headers, now).retryAfterMs, ms, `retry: ${value}`);
      assert.equal(parseRateLimitHeaders(headers, now).retryAfterMs, ms, `limiter: ${value}`);
    }
  });

  test('reads retry-after in seconds', () => {
    assert.equal(parseRetryAfterMs(new Headers({ 'retry-after': '7' }), now), 7000);
  });
  test('reads fractional seconds, rounding up', () => {
    assert.equal(parseRetryAfterMs(new Headers({ 'retry-after': '1.5' }), now), 1500);
  });
  test('reads an HTTP-date relative to now', () => {
    const date = new Date(now + 20_000).toUTCString();
    assert.equal(parseRetryAfterMs(new Headers({ 'retry-after': date }), now), 20_000);
  });
  test('an HTTP-date in the past means no wait', () => {
    const date = new Date(now - 60_000).toUTCString();
    assert.equal(parseRetryAfterMs(new Headers({ 'retry-after': date }), now), 0);
  });
  test('retry-after-ms wins over retry-after', () => {
    const headers = new Headers({ 'retry-after-ms': '250.4', 'retry-after': '9' });
    assert.equal(parseRetryAfterMs(headers, now), 251);
  });
  test('absent or garbage headers give undefined', () => {
    assert.equal(parseRetryAfterMs(none, now), undefined);
    assert.equal(parseRetryAfterMs(new Headers({ 'retry-after': 'soon' }), now), undefined);
  });
});

describe('classifyHttpError', () => {
  const table: [status: number, kind: string, retryable: boolean][] = [
    [400, 'bad_request', false],
    [401, 'auth', false],
    [402, 'quota', false],
    [403, 'auth', false],
    [404, 'bad_request', false],
    [408, 'timeout', true],
    [409, 'server', true],
    [413, 'bad_request', false],
    [422, 'bad_request', false],
    [425, 'server', true],
    [429, 'rate_limit', true],
    [500, 'server', true],
    [502, 'server', true],
    [503, 'server', true],
    [504, 'server', true],
    [529, 'server', true],
  ];
  for (const [status, kind, retryable] of table) {
    test(`HTTP ${status} is ${kind}, ${retryable ? 'retryable' : 'not retried'}`, () => {
      const e = classifyHttpError(status, '', none, now);
      assert.equal(e.kind, kind);
      assert.equal(e.retryable, retryable);
      assert.equal(e.status, status);
    });
  }

  test('429 with OpenAI insufficient_quota code aborts the batch with exit 3', () => {
    const body = openAi(
      'You exceeded your current quota, please check your plan.',
      'insufficient_quota',
      'insufficient_quota',
    );
    const e = classifyHttpError(429, body, none, now);
    assert.equal(e.kind, 'quota');
    assert.equal(e.retryable, false);
    assert.equal(e.exitCode, ExitCode.aborted);
    assert.equal(
      e.message,
      'provider returned HTTP 429 Too Many Requests: You exceeded your current quota, please check your plan.',
    );
    assert.match(e.hint ?? '', /credits/);
  });

  test('429 whose message says the quota is exceeded is quota even without a code', () => {
    const e = classifyHttpError(
      429,
      JSON.stringify({ error: { message: 'You exceeded your current quota' } }),
      none,
      now,
    );
    assert.equal(e.kind, 'quota');
  });

  test('OpenRouter 402 insufficient credits is quota', () => {
    const body = JSON.stringify({
      error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/credits' },
    });
    const e = classifyHttpError(402, body, none, now);
    assert.equal(e.kind, 'quota');
    assert.equal(e.retryable, false);
    assert.equal(
      e.message,
      'provider returned HTTP 402 Payment Required: Insufficient credits. Add more using https://openrouter.ai/credits',
    );
  });

  test('a 400 saying the credit balance is too low is quota, not a bad request', () => {
    const body = JSON.stringify({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'Your credit balance is too low' },
    });
    assert.equal(classifyHttpError(400, body, none, now).kind, 'quota');
  });

  test('401 aborts with exit 3 and never repeats the key', () => {
    const body = openAi(
      'Incorrect API key provided: sk-proj-abcdefghijklmnop1234. You can find your API key at x.',
      'invalid_request_error',
      'invalid_api_key',
    );
    const e = classifyHttpError(401, body, none, now);
    assert.equal(e.kind, 'auth');
    assert.equal(e.exitCode, ExitCode.aborted);
    assert.doesNotMatch(e.message, /abcdefghijklmnop1234/);
    assert.match(
      e.message,
      /^provider returned HTTP 401 Unauthorized: Incorrect API key provided: sk-pro…\[redacted\]/,
    );
  });

  test('a key of any shape that a gateway echoes whole is redacted when the key is given', () => {
    const key = 'gw_Q3p9ZxY7tL2m';
    const body = JSON.stringify({ error: { message: `key ${key} is not allowed here` } });
    assert.match(classifyHttpError(403, body, none, now).message, /gw_Q3p9ZxY7tL2m/, 'no pattern knows it');
    const e = classifyHttpError(403, body, none, now, key);
    assert.doesNotMatch(e.message, /Q3p9ZxY7tL2m/);
    assert.match(e.message, /key \[redacted\] is not allowed here/);
  });

  test('a plain 429 carries its Retry-After', () => {
    const e = classifyHttpError(
      429,
      openAi('Rate limit reached for requests', 'requests', 'rate_limit_exceeded'),
      new Headers({ 'retry-after': '3' }),
      now,
    );
    assert.equal(e.kind, 'rate_limit');
    assert.equal(e.retryAfterMs, 3000);
  });

  test('an HTML gateway page becomes a short one-line message', () => {
    const html = `<html><head><title>502 Bad Gateway</title><style>body{}</style></head><body><h1>502 Bad Gateway</h1>${'x'.repeat(500)}</body></html>`;
    const e = classifyHttpError(502, html, none, now);
    assert.equal(e.message.length, 'provider returned HTTP 502 Bad Gateway: '.length + 200);
    assert.match(e.message, /^provider returned HTTP 502 Bad Gateway: 502 Bad Gateway 502 Bad Gateway x+…$/);
  });

  test('a 503 with an empty body says only the status', () => {
    assert.equal(
      classifyHttpError(503, '', none, now).message,
      'provider returned HTTP 503 Service Unavailable',
    );
  });
});

describe('classifyFetchError', () => {
  const plain = { timedOut: false, timeoutMs: 30_000, cancelled: false };
  const withCause = (message: string, code: string): Error =>
    new TypeError(message, { cause: Object.assign(new Error(`${code} happened`), { code }) });

  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'UND_ERR_SOCKET', 'EPIPE', 'EAI_AGAIN']) {
    test(`fetch failed caused by ${code} is a retryable network error`, () => {
      const e = classifyFetchError(withCause('fetch failed', code), plain);
      assert.equal(e.kind, 'network');
      assert.equal(e.retryable, true);
      assert.equal(e.message, `connection to the provider failed: fetch failed (${code} happened) [${code}]`);
    });
  }

  test('"terminated" with no code is a retryable network error', () => {
    const e = classifyFetchError(new TypeError('terminated'), plain);
    assert.equal(e.kind, 'network');
    assert.equal(e.retryable, true);
  });

  test('a TLS certificate failure is not retried', () => {
    const e = classifyFetchError(withCause('fetch failed', 'CERT_HAS_EXPIRED'), plain);
    assert.equal(e.kind, 'network');
    assert.equal(e.retryable, false);
  });

  test('our own timeout firing is a retryable timeout naming the limit', () => {
    const e = classifyFetchError(new DOMException('This operation was aborted', 'AbortError'), {
      ...plain,
      timedOut: true,
    });
    assert.equal(e.kind, 'timeout');
    assert.equal(e.retryable, true);
    assert.equal(e.message, 'request timed out after 30 s');
  });

  test('undici header timeout is a timeout', () => {
    const e = classifyFetchError(withCause('fetch failed', 'UND_ERR_HEADERS_TIMEOUT'), plain);
    assert.equal(e.kind, 'timeout');
  });

  test('an abort by the user is cancelled, not retried, exit 130', () => {
    const e = classifyFetchError(new DOMException('This operation was aborted', 'AbortError'), {
      ...plain,
      cancelled: true,
    });
    assert.equal(e.kind, 'cancelled');
    assert.equal(e.retryable, false);
    assert.equal(e.exitCode, ExitCode.interrupted);
  });
});

test('invalidResponseError is a retryable invalid_response', () => {
  const e = invalidResponseError('expected "back" to be a string, got number');
  assert.equal(e.kind, 'invalid_response');
  assert.equal(e.retryable, true);
  assert.equal(e.message, 'provider response is invalid: expected "back" to be a string, got number');
});
