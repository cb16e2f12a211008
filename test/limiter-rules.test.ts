import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { after429, restartsAfter429, wantsSharedRates } from '../src/limiter/after-429.ts';
import {
  cancelled,
  charged,
  conformsAt,
  decideBooking,
  raised,
  refunded,
  remainingAheadMs,
} from '../src/limiter/gcra.ts';
import { noRateLimitInfo, parseRateLimitHeaders } from '../src/limiter/headers.ts';
import { bucketPlan } from '../src/limiter/layout.ts';
import { tokenAccounting } from '../src/limiter/learn.ts';
import { defaultRow, type KeyRow } from '../src/limiter/schema.ts';

/** The rules alone, on plain values: what every backend applies inside its atomic operations. */

const now = 1_000_000;
const info = (h: Record<string, string> = {}) => parseRateLimitHeaders(new Headers(h), 0);
const unknown = { burstSeconds: 1, shards: 'auto' as const, maxRequestTokens: 1000 };
const row = (over: Partial<KeyRow> = {}): KeyRow => ({ ...defaultRow('k'), ...over });

describe('GCRA arithmetic', () => {
  test('a shard conforms once TAT + cost - tau is reached; a never used shard at once', () => {
    assert.equal(conformsAt(now + 900, 100, 950), now + 50);
    assert.equal(conformsAt(null, 100, 950), Number.NEGATIVE_INFINITY);
  });

  test('charge, cancel, refund and restart move a TAT as documented', () => {
    assert.deepEqual(
      [charged(now + 500, now, 100), charged(now - 500, now, 100), charged(null, now, 100)],
      [now + 600, now + 100, now + 100],
    );
    // Two bookings of 100 after this one: cancel gives back nothing; the last one: all of it.
    assert.equal(cancelled(now + 300, 100, now + 100, now), now + 300);
    assert.equal(cancelled(now + 300, 100, now + 300, now), now + 200);
    assert.equal(cancelled(now + 300, 1000, now + 300, now), now);
    assert.deepEqual([refunded(now + 300, 200, now), refunded(now + 300, 900, now)], [now + 100, now]);
    assert.deepEqual([raised(null, now), raised(now - 1, now), raised(now + 1, now)], [now, now, now + 1]);
  });

  test("the provider's remaining count restarts the shards only when it is below a burst", () => {
    // 100 ms a request; tau 10 x 100 less 200 ms of slack.
    const bucket = bucketPlan('rpm', 600, 10, 1, 1000);
    assert.deepEqual([bucket.intervalMs, bucket.tauMs], [100, 800]);
    assert.equal(remainingAheadMs(bucket, 10), null);
    // 2 left hold 200 ms of the 800: the shard starts 600 ms ahead.
    assert.equal(remainingAheadMs(bucket, 2), 600);
  });

  test('the slack against the provider: 200 ms from the burst, 50 ms from the spacing of a one-request burst', () => {
    const plan = (kind: 'rpm' | 'tpm', rate: number, burst: number) => {
      const b = bucketPlan(kind, rate, burst, 1, 1000);
      return [b.intervalMs, b.tauMs];
    };
    // 600 RPM, burst 10: 10 x 100 ms less 200 ms; the spacing stays 100 ms.
    assert.deepEqual(plan('rpm', 600, 10), [100, 800]);
    // 60 RPM, burst 1: tau keeps one request, so the spacing gives 50 ms: 1000 + 50.
    assert.deepEqual(plan('rpm', 60, 1), [1050, 1050]);
    // Burst 1.02 at 60 RPM: 20 ms above one request; the spacing gives the other 30 of the 50.
    assert.deepEqual(plan('rpm', 60, 1.02), [1030, 1030]);
    // Burst 1.1: 100 ms above one request covers the 50 ms, so the spacing stays; tau keeps one
    // request (1000, not 1100 - 200), the burst giving up the 100 ms it has.
    assert.deepEqual(plan('rpm', 60, 1.1), [1000, 1000]);
    // Tokens, 1 ms each, burst 2000: 2000 - 200; the spacing is never widened for tokens.
    assert.deepEqual(plan('tpm', 60_000, 2000), [1, 1800]);
  });

  test('a booking writes each changed shard once: refunds first, then the charge', () => {
    const { booking, writes } = decideBooking(
      { now, pausedUntil: 0, pauseReason: null, tats: [{ kind: 'tpm', shard: 1, tat: now + 1000 }] },
      {
        shards: [1, 1],
        buckets: [{ kind: 'tpm', costMs: 500, tauMs: 1000 }],
        maxWaitMs: 0,
        refunds: [
          { kind: 'tpm', shard: 1, ms: 600 },
          { kind: 'tpm', shard: 2, ms: 600 },
        ],
      },
    );
    assert.deepEqual(booking, {
      ok: true,
      now,
      delayMs: 0,
      charges: [{ kind: 'tpm', shard: 1, costMs: 500, after: now + 900 }],
    });
    assert.deepEqual(writes, [{ kind: 'tpm', shard: 1, tat: now + 900 }]);
  });

  test('a refused booking still writes its refunds, and blames the pause only when the pause holds it', () => {
    const request = {
      shards: [0, 0] as const,
      buckets: [{ kind: 'rpm' as const, costMs: 100, tauMs: 100 }],
      maxWaitMs: 0,
      refunds: [{ kind: 'rpm' as const, shard: 0, ms: 100 }],
    };
    const tats = [{ kind: 'rpm' as const, shard: 0, tat: now + 500 }];
    assert.deepEqual(decideBooking({ now, pausedUntil: now + 1000, pauseReason: 'p', tats }, request), {
      booking: { ok: false, now, delayMs: 1000, pausedBy: 'p' },
      writes: [{ kind: 'rpm', shard: 0, tat: now + 400 }],
    });
    assert.deepEqual(
      decideBooking({ now, pausedUntil: now + 100, pauseReason: 'p', tats }, request).booking,
      {
        ok: false,
        now,
        delayMs: 400,
        pausedBy: null,
      },
    );
  });
});

describe('a 429', () => {
  test('a new episode adds a strike and doubles the pause; one within the pause keeps both', () => {
    const fresh = after429({
      row: row(),
      info: info(),
      nowMs: now,
      settings: unknown,
      shared: null,
      maxRpmTat: null,
    });
    assert.deepEqual(fresh, {
      until: now + 1000,
      reason: '429 from the provider (no Retry-After)',
      strikes: 1,
      aimdRpm: null,
      aimdAt: null,
    });
    const third = after429({
      row: row({ strikes: 2, paused_until: now }),
      info: info(),
      nowMs: now,
      settings: unknown,
      shared: null,
      maxRpmTat: null,
    });
    assert.deepEqual(
      [third.until, third.strikes, third.reason],
      [now + 4000, 3, '429 from the provider (no Retry-After, 3 in a row)'],
    );
    const inFlight = after429({
      row: row({ strikes: 3, paused_until: now + 10 }),
      info: info(),
      nowMs: now,
      settings: unknown,
      shared: null,
      maxRpmTat: null,
    });
    assert.deepEqual([inFlight.until, inFlight.strikes], [now + 10, 3]);
  });

  test('the shared meters are wanted only while the rate is unknown, unreported and growing', () => {
    assert.equal(wantsSharedRates(row(), info(), undefined, now), true);
    assert.equal(wantsSharedRates(row(), info(), 600, now), false);
    assert.equal(wantsSharedRates(row({ header_rpm: 300 }), info(), undefined, now), false);
    assert.equal(
      wantsSharedRates(row(), info({ 'x-ratelimit-remaining-requests': '0' }), undefined, now),
      false,
    );
    assert.equal(wantsSharedRates(row({ aimd_rpm: 100, aimd_at: now + 1 }), info(), undefined, now), false);
  });

  test('the decrease is 70% of what the whole key got accepted, and growth waits for the booked sends', () => {
    const decision = after429({
      row: row({ aimd_rpm: 6000, aimd_at: now - 60_000 }),
      info: info(),
      nowMs: now,
      settings: unknown,
      shared: { accepted: 3000, admitted: 3200, historyMs: 5000 },
      maxRpmTat: now + 5000,
    });
    // 6000 RPM grown for 60 s (x4) is far above what was accepted: 70% of 3000. The 24,000 RPM
    // bucket's tau is 1 s of burst less 200 ms: the last booked send is at now + 5000 - 800.
    assert.deepEqual([decision.aimdRpm, decision.aimdAt], [2100, now + 4200 + 1000]);
  });

  test('after the pause each shard restarts one request before its tau', () => {
    const restarts = restartsAfter429(row(), { ...unknown, rpm: 600, tpm: 120_000 }, now, now + 2000);
    // Both buckets: tau 1 s of burst less 200 ms; one request is 100 ms of RPM and 1000 tokens at
    // 0.5 ms each of TPM.
    assert.deepEqual(restarts, [
      { kind: 'rpm', shards: 1, aheadMs: 2000 + 800 - 100 },
      { kind: 'tpm', shards: 1, aheadMs: 2000 + 800 - 500 },
    ]);
  });
});

describe('tokenAccounting: how a provider counts a request against its token budget', () => {
  const answer = { promptTokens: 500, totalTokens: 900, maxTokens: 1500 };
  const headers = (limitTokens: number, resetTokensMs: number) => ({
    ...noRateLimitInfo,
    limitTokens,
    resetTokensMs,
  });

  test('a bucket lacking at least prompt + max_tokens right after the request: booked up front', () => {
    // 600,000/min is 10 tokens a ms: 2,000 lacking = 200 ms to full.
    assert.equal(tokenAccounting(headers(600_000, 200), answer), 'upfront');
    assert.equal(tokenAccounting(headers(600_000, 350), answer), 'upfront', 'others in flight lack more');
  });

  test('a bucket lacking about what the answer used: counted by use', () => {
    assert.equal(tokenAccounting(headers(600_000, 90), answer), 'usage');
  });

  test('no answer without the limit and the reset, or with an answer that used nearly all of max_tokens', () => {
    assert.equal(tokenAccounting({ ...noRateLimitInfo, limitTokens: 600_000 }, answer), undefined);
    assert.equal(tokenAccounting(headers(600_000, 90), { ...answer, totalTokens: 1900 }), undefined);
  });
});
