import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  hasLimitHeaders,
  noRateLimitInfo,
  parseRateLimitHeaders,
  parseResetMs,
} from '../src/limiter/headers.ts';
import { exhaustedUntil, headerLimits, pauseAfter429 } from '../src/limiter/learn.ts';

const now = Date.UTC(2026, 0, 1, 12, 0, 0);

describe('parseResetMs', () => {
  test('reads Go-style durations as OpenAI and Groq send them', () => {
    assert.equal(parseResetMs('6m0s', now), 360_000);
    assert.equal(parseResetMs('1s', now), 1000);
    assert.equal(parseResetMs('20ms', now), 20);
    assert.equal(parseResetMs('0.5s', now), 500);
    assert.equal(parseResetMs('2m59.56s', now), 179_560);
    assert.equal(parseResetMs('1h2m3s', now), 3_723_000);
    assert.equal(parseResetMs('1500us', now), 1.5);
  });

  test('reads a bare small number as seconds from now', () => {
    assert.equal(parseResetMs('7', now), 7000);
    assert.equal(parseResetMs('0.25', now), 250);
  });

  test('reads an epoch in milliseconds (OpenRouter) and in seconds', () => {
    assert.equal(parseResetMs(String(now + 4200), now), 4200);
    assert.equal(parseResetMs(String(now / 1000 + 30), now), 30_000);
  });

  test('reads HTTP and ISO dates', () => {
    assert.equal(parseResetMs(new Date(now + 90_000).toUTCString(), now), 90_000);
    assert.equal(parseResetMs(new Date(now + 5000).toISOString(), now), 5000);
  });

  test('turns times in the past into 0 and garbage into undefined', () => {
    assert.equal(parseResetMs(String(now - 5000), now), 0);
    assert.equal(parseResetMs('soon', now), undefined);
    assert.equal(parseResetMs('', now), undefined);
    assert.equal(parseResetMs('5x', now), undefined);
  });
});

describe('parseRateLimitHeaders', () => {
  test('reads the six OpenAI/Groq headers', () => {
    const info = parseRateLimitHeaders(
      new Headers({
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-limit-tokens': '200000',
        'x-ratelimit-remaining-requests': '499',
        'x-ratelimit-remaining-tokens': '198500',
        'x-ratelimit-reset-requests': '120ms',
        'x-ratelimit-reset-tokens': '450ms',
      }),
      now,
    );
    assert.deepEqual(info, {
      limitRequests: 500,
      limitTokens: 200_000,
      remainingRequests: 499,
      remainingTokens: 198_500,
      resetRequestsMs: 120,
      resetTokensMs: 450,
      retryAfterMs: undefined,
    });
    assert.equal(hasLimitHeaders(info), true);
  });

  test('reads OpenRouter-style headers as the request budget, reset as an epoch in ms', () => {
    const info = parseRateLimitHeaders(
      new Headers({
        'x-ratelimit-limit': '20',
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(now + 3000),
      }),
      now,
    );
    assert.equal(info.limitRequests, 20);
    assert.equal(info.remainingRequests, 0);
    assert.equal(info.resetRequestsMs, 3000);
    assert.equal(info.limitTokens, undefined);
  });

  test('prefers retry-after-ms over retry-after', () => {
    const info = parseRateLimitHeaders(new Headers({ 'retry-after-ms': '1500', 'retry-after': '20' }), now);
    assert.equal(info.retryAfterMs, 1500);
  });

  test('reads retry-after in seconds and as an HTTP date', () => {
    assert.equal(parseRateLimitHeaders(new Headers({ 'retry-after': '3' }), now).retryAfterMs, 3000);
    const date = new Date(now + 12_000).toUTCString();
    assert.equal(parseRateLimitHeaders(new Headers({ 'retry-after': date }), now).retryAfterMs, 12_000);
  });

  test('takes the first member of IETF-draft list values', () => {
    const info = parseRateLimitHeaders(
      new Headers({ 'ratelimit-limit': '100, 100;w=60', 'ratelimit-reset': '50' }),
      now,
    );
    assert.equal(info.limitRequests, 100);
    assert.equal(info.resetRequestsMs, 50_000);
  });

  test('a response without rate-limit headers has none', () => {
    const info = parseRateLimitHeaders(
      new Headers({ 'content-type': 'application/json', 'retry-after': '1' }),
      now,
    );
    assert.equal(hasLimitHeaders(info), false);
    assert.equal(info.retryAfterMs, 1000);
  });

  test('ignores unparseable counts', () => {
    const info = parseRateLimitHeaders(new Headers({ 'x-ratelimit-limit-requests': 'lots' }), now);
    assert.equal(info.limitRequests, undefined);
  });
});

describe('what the headers mean for pacing', () => {
  const none = noRateLimitInfo;

  test('limits are per-minute budgets unless their reset is more than a minute away', () => {
    assert.deepEqual(
      headerLimits({ ...none, limitRequests: 300, resetRequestsMs: 200, limitTokens: 40_000 }),
      {
        rpm: 300,
        tpm: 40_000,
      },
    );
    // Groq's requests-per-day: the reset is minutes away.
    assert.deepEqual(headerLimits({ ...none, limitRequests: 14_400, resetRequestsMs: 179_560 }), {
      rpm: undefined,
      tpm: undefined,
    });
  });

  test('remaining 0 with a known per-minute limit waits one request of budget, not the full reset', () => {
    const info = { ...none, limitRequests: 600, remainingRequests: 0, resetRequestsMs: 1000 };
    assert.deepEqual(exhaustedUntil(info, now, 1000), {
      untilMs: now + 100,
      reason: 'provider reported 0 requests remaining',
    });
  });

  test('remaining 0 without a limit waits until the reset', () => {
    const info = { ...none, remainingTokens: 0, resetTokensMs: 2500 };
    assert.deepEqual(exhaustedUntil(info, now, 1000), {
      untilMs: now + 2500,
      reason: 'provider reported 0 tokens remaining',
    });
    assert.equal(
      exhaustedUntil({ ...none, remainingRequests: 3, resetRequestsMs: 2500 }, now, 1000),
      undefined,
    );
  });

  test('a 429 pauses for Retry-After, else an exhausted reset, else 1 s doubling up to 30 s', () => {
    assert.deepEqual(pauseAfter429({ ...none, retryAfterMs: 7000 }, 3, now, 1000), {
      ms: 7000,
      source: 'Retry-After',
    });
    assert.deepEqual(pauseAfter429({ ...none, remainingRequests: 0, resetRequestsMs: 800 }, 0, now, 1000), {
      ms: 800,
      source: 'provider reported 0 requests remaining',
    });
    assert.deepEqual(
      [0, 1, 2, 5, 9].map((strikes) => pauseAfter429(none, strikes, now, 1000).ms),
      [1000, 2000, 4000, 30_000, 30_000],
    );
  });
});
