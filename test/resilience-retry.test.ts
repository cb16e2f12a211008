import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProviderError } from '../src/core/errors.ts';
import { seededRandom } from '../src/core/random.ts';
import {
  classifyHttpError,
  fullJitterDelay,
  invalidResponseError,
  RetryPolicy,
  type RetrySettings,
} from '../src/resilience/index.ts';

const settings: RetrySettings = { maxAttempts: 6, baseDelayMs: 1000, maxDelayMs: 30_000 };
const now = Date.UTC(2026, 0, 1);
const none = new Headers();
const serverError = (): ProviderError => classifyHttpError(503, '', none, now);
const half = (): number => 0.5;

describe('fullJitterDelay', () => {
  test('stays within [0, min(cap, base x 2^attempt)] over 20,000 samples per attempt and covers the range', () => {
    const random = seededRandom(42);
    for (let attempt = 0; attempt <= 8; attempt++) {
      const ceiling = Math.min(30_000, 1000 * 2 ** attempt);
      let min = Number.POSITIVE_INFINITY;
      let max = 0;
      let sum = 0;
      for (let i = 0; i < 20_000; i++) {
        const d = fullJitterDelay(attempt, 1000, 30_000, random);
        assert.ok(
          Number.isInteger(d) && d >= 0 && d <= ceiling,
          `attempt ${attempt}: ${d} outside [0, ${ceiling}]`,
        );
        min = Math.min(min, d);
        max = Math.max(max, d);
        sum += d;
      }
      assert.ok(min <= ceiling * 0.001, `attempt ${attempt}: smallest ${min} should be near 0`);
      assert.ok(max >= ceiling * 0.999, `attempt ${attempt}: largest ${max} should be near ${ceiling}`);
      const mean = sum / 20_000;
      assert.ok(
        Math.abs(mean - ceiling / 2) < ceiling * 0.01,
        `attempt ${attempt}: mean ${mean} should be near ${ceiling / 2}`,
      );
    }
  });

  test('the extremes of the random source map to 0 and the ceiling', () => {
    assert.equal(
      fullJitterDelay(3, 1000, 30_000, () => 0),
      0,
    );
    assert.equal(
      fullJitterDelay(3, 1000, 30_000, () => 0.999_999_999),
      8000,
    );
    assert.equal(
      fullJitterDelay(10, 1000, 30_000, () => 0.999_999_999),
      30_000,
    );
    assert.equal(
      fullJitterDelay(5000, 1000, 30_000, () => 0.999_999_999),
      30_000,
    );
  });
});

describe('RetryPolicy', () => {
  test('the first retry waits up to base, the second up to 2 x base', () => {
    const policy = new RetryPolicy(settings, { random: () => 0.999_999_999 });
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now }), { retry: true, delayMs: 1000 });
    assert.deepEqual(policy.decide(serverError(), 2, { nowMs: now }), { retry: true, delayMs: 2000 });
  });

  test('Retry-After is a floor on the delay, not a replacement for a longer backoff', () => {
    const policy = new RetryPolicy(settings, { random: half });
    const slow = classifyHttpError(429, '', new Headers({ 'retry-after': '5' }), now);
    assert.deepEqual(policy.decide(slow, 1, { nowMs: now }), { retry: true, delayMs: 5000 });
    const quick = classifyHttpError(503, '', new Headers({ 'retry-after-ms': '100' }), now);
    assert.deepEqual(policy.decide(quick, 1, { nowMs: now }), { retry: true, delayMs: 500 });
  });

  for (const status of [400, 401, 403, 404, 413, 422]) {
    test(`HTTP ${status} is never retried`, () => {
      const policy = new RetryPolicy(settings, { random: half });
      assert.deepEqual(policy.decide(classifyHttpError(status, '', none, now), 1, { nowMs: now }), {
        retry: false,
        reason: 'permanent',
      });
    });
  }

  test('quota exhaustion is never retried', () => {
    const policy = new RetryPolicy(settings, { random: half });
    const quota = classifyHttpError(
      429,
      JSON.stringify({ error: { code: 'insufficient_quota', message: 'no' } }),
      none,
      now,
    );
    assert.deepEqual(policy.decide(quota, 1, { nowMs: now }), { retry: false, reason: 'permanent' });
    assert.equal(policy.budgetTokens, 20);
  });

  test('stops after maxAttempts attempts in total', () => {
    const policy = new RetryPolicy(settings, { random: half });
    assert.equal(policy.decide(serverError(), 5, { nowMs: now }).retry, true);
    assert.deepEqual(policy.decide(serverError(), 6, { nowMs: now }), { retry: false, reason: 'attempts' });
  });

  test('rate limits get three times the attempts and spend no budget', () => {
    const policy = new RetryPolicy(settings, { random: half });
    const limited = classifyHttpError(429, '', none, now);
    assert.equal(policy.decide(limited, 17, { nowMs: now }).retry, true);
    assert.deepEqual(policy.decide(limited, 18, { nowMs: now }), { retry: false, reason: 'attempts' });
    assert.equal(policy.budgetTokens, 20);
  });

  test('never starts a retry that would begin after the deadline', () => {
    const policy = new RetryPolicy(settings, { random: half });
    // half of [0, 1000] -> 500 ms
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now, deadlineMs: now + 499 }), {
      retry: false,
      reason: 'deadline',
    });
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now, deadlineMs: now + 500 }), {
      retry: true,
      delayMs: 500,
    });
    const slow = classifyHttpError(429, '', new Headers({ 'retry-after': '60' }), now);
    assert.deepEqual(policy.decide(slow, 1, { nowMs: now, deadlineMs: now + 59_999 }), {
      retry: false,
      reason: 'deadline',
    });
  });

  test('a refused retry spends no budget', () => {
    const policy = new RetryPolicy(settings, { random: half });
    policy.decide(serverError(), 1, { nowMs: now, deadlineMs: now });
    policy.decide(serverError(), 6, { nowMs: now });
    assert.equal(policy.budgetTokens, 20);
  });

  test('the budget allows 19 retries in a row when everything fails, then one per two successes', () => {
    const policy = new RetryPolicy(settings, { random: half });
    const decisions = Array.from({ length: 25 }, () => policy.decide(serverError(), 1, { nowMs: now }));
    assert.equal(decisions.filter((d) => d.retry).length, 19);
    assert.deepEqual(decisions[19], { retry: false, reason: 'budget' });
    assert.equal(policy.budgetTokens, 1);
    policy.onSuccess();
    assert.equal(policy.budgetTokens, 1.5);
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now }), { retry: true, delayMs: 500 });
    assert.equal(policy.budgetTokens, 0.5);
    policy.onSuccess();
    assert.equal(policy.budgetTokens, 1);
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now }), { retry: false, reason: 'budget' });
    policy.onSuccess();
    assert.equal(policy.budgetTokens, 1.5);
    assert.deepEqual(policy.decide(serverError(), 1, { nowMs: now }), { retry: true, delayMs: 500 });
  });

  test('a budget spent on answers that never once validated calls the provider unusable', () => {
    const invalid = (): ProviderError => invalidResponseError('provider sent a body that is not valid JSON');
    const policy = new RetryPolicy(settings, { random: half });
    const decisions = Array.from({ length: 20 }, () => policy.decide(invalid(), 1, { nowMs: now }));
    assert.equal(decisions.filter((d) => d.retry).length, 19);
    assert.deepEqual(decisions[19], { retry: false, reason: 'unusable' });
    // One valid answer at any time shows the provider can do it: then it is only out of budget.
    const seen = new RetryPolicy(settings, { random: half });
    seen.onSuccess();
    const later = Array.from({ length: 20 }, () => seen.decide(invalid(), 1, { nowMs: now }));
    assert.deepEqual(later[19], { retry: false, reason: 'budget' });
    // Outages are the breaker's business, whatever came before.
    const down = new RetryPolicy(settings, { random: half });
    const outage = Array.from({ length: 20 }, () => down.decide(serverError(), 1, { nowMs: now }));
    assert.deepEqual(outage[19], { retry: false, reason: 'budget' });
  });

  test('ten refusals (400/404) with nothing accepted yet call the provider unusable; after a success they are per-item', () => {
    const refused = (): ProviderError =>
      classifyHttpError(404, '{"error":{"message":"no such model"}}', none, now);
    const policy = new RetryPolicy(settings, { random: half });
    const decisions = Array.from({ length: 10 }, () => policy.decide(refused(), 1, { nowMs: now }));
    assert.deepEqual(decisions.slice(0, 9), Array(9).fill({ retry: false, reason: 'permanent' }));
    assert.deepEqual(decisions[9], { retry: false, reason: 'unusable' });
    const working = new RetryPolicy(settings, { random: half });
    working.onSuccess();
    const later = Array.from({ length: 30 }, () => working.decide(refused(), 1, { nowMs: now }));
    assert.ok(later.every((d) => !d.retry && d.reason === 'permanent'));
  });

  test('the budget refills to its maximum of 20 tokens and no further', () => {
    const policy = new RetryPolicy(settings, { random: half });
    for (let i = 0; i < 10; i++) policy.decide(serverError(), 1, { nowMs: now });
    assert.equal(policy.budgetTokens, 10);
    for (let i = 0; i < 1000; i++) policy.onSuccess();
    assert.equal(policy.budgetTokens, 20);
  });

  test('invalid responses and network errors are retried', () => {
    const policy = new RetryPolicy(settings, { random: half });
    const invalid = new ProviderError('invalid_response', 'bad json', { retryable: true });
    assert.deepEqual(policy.decide(invalid, 1, { nowMs: now }), { retry: true, delayMs: 500 });
  });

  test('rejects nonsense settings with the value received', () => {
    assert.throws(
      () => new RetryPolicy({ ...settings, maxAttempts: 0 }, { random: half }),
      /retry maxAttempts must be an integer >= 1, got 0/,
    );
    assert.throws(
      () => new RetryPolicy({ ...settings, maxDelayMs: 10 }, { random: half }),
      /0 <= baseDelayMs <= maxDelayMs, got base 1000 ms and cap 10 ms/,
    );
  });
});

describe('the retry window for transient failures', () => {
  const windowed: RetrySettings = { ...settings, windowMs: 60_000 };

  test('a transient failure keeps its item trying past maxAttempts until the window has passed', () => {
    const policy = new RetryPolicy(windowed, { random: half });
    const since = now;
    assert.equal(policy.decide(serverError(), 6, { nowMs: now + 20_000, sinceMs: since }).retry, true);
    assert.equal(policy.decide(serverError(), 9, { nowMs: now + 59_999, sinceMs: since }).retry, true);
    assert.deepEqual(policy.decide(serverError(), 9, { nowMs: now + 60_000, sinceMs: since }), {
      retry: false,
      reason: 'attempts',
    });
  });

  test('an answer that never validates is not an outage: it fails after maxAttempts, window or not', () => {
    const policy = new RetryPolicy(windowed, { random: half });
    const invalid = invalidResponseError('bad JSON');
    assert.deepEqual(policy.decide(invalid, 6, { nowMs: now + 1000, sinceMs: now }), {
      retry: false,
      reason: 'attempts',
    });
  });

  test('without a window (0), attempts alone bound an item', () => {
    const policy = new RetryPolicy({ ...settings, windowMs: 0 }, { random: half });
    assert.equal(policy.decide(serverError(), 6, { nowMs: now + 1000, sinceMs: now }).retry, false);
  });
});

describe('a provider nothing answers at', () => {
  const refused = (): ProviderError =>
    new ProviderError('network', 'connection to the provider failed: connect ECONNREFUSED 127.0.0.1:19', {
      retryable: true,
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:19'), { code: 'ECONNREFUSED' }),
    });

  test('five refused connections and no answer in the run: the run stops, naming the address', () => {
    const policy = new RetryPolicy(settings, { random: half, endpoint: 'http://127.0.0.1:19/v1' });
    for (let i = 1; i < 5; i++) assert.equal(policy.next(refused(), 1, { nowMs: now }).action, 'retry');
    const step = policy.next(refused(), 1, { nowMs: now });
    assert.ok(step.action === 'stop');
    assert.equal(step.error.exitCode, 3);
    assert.equal(
      step.error.message,
      'cannot reach the provider at http://127.0.0.1:19/v1: 5 attempts, none answered (connection refused)',
    );
    assert.match(step.error.hint ?? '', /is the server running.*flashcards doctor/);
  });

  test('refused after the provider has answered once is an outage: retried, not a stop', () => {
    const policy = new RetryPolicy(settings, { random: half, endpoint: 'http://x/v1' });
    policy.onSuccess();
    for (let i = 0; i < 10; i++) assert.equal(policy.next(refused(), 1, { nowMs: now }).action, 'retry');
  });
});
