import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { seededRandom } from '../src/core/random.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import { noRateLimitInfo } from '../src/limiter/headers.ts';
import {
  createLimiter,
  type Limiter,
  type LimiterSettings,
  type LimiterStore,
  parseRateLimitHeaders,
  planBuckets,
  type Reservation,
  sqliteLimiterAdmin,
  sqliteLimiterStore,
} from '../src/limiter/index.ts';
import { keyStatuses } from '../src/limiter/status.ts';

const key = 'https://api.test/v1|model|0123456789ab';

function settings(over: Partial<LimiterSettings>): LimiterSettings {
  return { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000, ...over };
}

function setup(over: Partial<LimiterSettings>, db: Db = openDatabase(':memory:'), clock = new FakeClock()) {
  return {
    db,
    clock,
    limiter: createLimiter(sqliteLimiterStore(db, { clock }), key, settings(over), { clock }),
  };
}

function ok(r: Reservation): Extract<Reservation, { ok: true }> {
  assert.equal(r.ok, true, r.ok ? '' : r.message);
  return r as Extract<Reservation, { ok: true }>;
}

function reserve(
  limiter: Limiter,
  tokens = 0,
  maxWaitMs = Number.POSITIVE_INFINITY,
  jobId = 'job',
): Promise<Reservation> {
  return limiter.reserve({ jobId, tokens }, { maxWaitMs });
}

/** `n` results of `fn`, one after the other. */
async function inOrder<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}

/** Response headers as the limiter receives them: parsed (every value here is relative to now). */
const info = (h: Record<string, string> = {}) => parseRateLimitHeaders(new Headers(h), 0);

function tempDbFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'state.db');
}

/** Largest excess of admitted cost over rate*W + burst across every window between two sends. */
function worstWindowExcess(sends: { at: number; cost: number }[], perMinute: number, burst: number): number {
  const sorted = [...sends].sort((a, b) => a.at - b.at);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++) {
    let sum = 0;
    for (let j = i; j < sorted.length; j++) {
      sum += sorted[j]?.cost ?? 0;
      const w = (sorted[j]?.at ?? 0) - (sorted[i]?.at ?? 0);
      worst = Math.max(worst, sum - ((perMinute * w) / 60_000 + burst));
    }
  }
  return worst;
}

describe('token buckets', () => {
  test('a fresh bucket allows one second of burst less 200 ms of slack, then one request per interval', async () => {
    const { limiter } = setup({ rpm: 600 });
    const delays = await inOrder(13, async (i) => ok(await reserve(limiter, 0, Infinity, `j${i}`)).delayMs);
    // 100 ms a request, tau 1000 - 200 = 800: the k-th request goes at max(0, k x 100 - 800).
    assert.deepEqual(delays, [0, 0, 0, 0, 0, 0, 0, 0, 100, 200, 300, 400, 500]);
  });

  test('a burst of one request takes 50 ms of slack from the spacing instead, not the 200 ms of the burst', async () => {
    // 30 RPM: a 1 s burst is half a request, so one; 2000 ms a request + 50 ms.
    const { limiter } = setup({ rpm: 30 });
    assert.deepEqual([ok(await reserve(limiter)).delayMs, ok(await reserve(limiter)).delayMs], [0, 2050]);
  });

  test('for any window W, admitted cost <= rate x W + burst (requests and tokens, 8 shards)', async () => {
    const { limiter, clock } = setup({ rpm: 6000, tpm: 600_000, maxRequestTokens: 1000 });
    assert.equal((await limiter.snapshot()).rpm, 6000);
    const random = seededRandom(7);
    const sends: { at: number; cost: number; tokens: number }[] = [];
    for (let step = 0; step < 400; step++) {
      await clock.advance(Math.floor(random() * 60));
      const n = Math.floor(random() * 8);
      for (let i = 0; i < n; i++) {
        const tokens = 100 + Math.floor(random() * 900);
        const r = ok(await reserve(limiter, tokens, Infinity, `s${step}-${i}`));
        sends.push({ at: clock.now() + r.delayMs, cost: 1, tokens });
      }
    }
    assert.ok(sends.length > 1000);
    assert.ok(worstWindowExcess(sends, 6000, 100) <= 1e-6);
    const tokenSends = sends.map((s) => ({ at: s.at, cost: s.tokens }));
    assert.ok(worstWindowExcess(tokenSends, 600_000, 10_000) <= 1e-3);
  });

  test('under saturation for 60 s of fake time, admitted >= 95% of rate x 60 s (8 shards)', async () => {
    const { limiter, clock } = setup({ rpm: 6000 });
    const start = clock.now();
    const workers = Array.from({ length: 40 }, () => start);
    let admitted = 0;
    let job = 0;
    for (;;) {
      const next = Math.min(...workers);
      if (next >= start + 60_000) break;
      await clock.advance(next - clock.now());
      const w = workers.indexOf(next);
      const r = ok(await reserve(limiter, 0, Infinity, `job-${job++}`));
      const sendAt = clock.now() + r.delayMs;
      if (sendAt < start + 60_000) admitted++;
      // The request itself takes 50 ms; the worker then asks again.
      workers[w] = sendAt + 50;
    }
    assert.ok(admitted >= 0.95 * 6000, `admitted ${admitted}`);
    assert.ok(admitted <= 6000 + 100, `admitted ${admitted}`);
  });
});

describe('shared state', () => {
  test('two limiters on one database file spend one budget', async () => {
    const file = tempDbFile();
    const clock = new FakeClock();
    const a = setup({ rpm: 600 }, openDatabase(file), clock).limiter;
    const b = setup({ rpm: 600 }, openDatabase(file), clock).limiter;
    // a spends the burst of 8 (tau 800 ms at 100 ms a request); b's request is the 9th: 900 - 800.
    const fromA = await inOrder(8, async (i) => ok(await reserve(a, 0, Infinity, `a${i}`)).delayMs);
    assert.deepEqual(fromA, [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(
      [ok(await reserve(b, 0, Infinity, 'b0')).delayMs, ok(await reserve(a, 0, Infinity, 'a8')).delayMs],
      [100, 200],
    );
  });

  test("the provider's remaining count lowers what the bucket thinks is left, never raises it", async () => {
    const { limiter } = setup({ rpm: 600 });
    await limiter.observe({ status: 200, info: info({ 'x-ratelimit-remaining-requests': '2' }) });
    await limiter.observe({ status: 200, info: info({ 'x-ratelimit-remaining-requests': '500' }) });
    const delays = await inOrder(3, async (i) => ok(await reserve(limiter, 0, Infinity, `j${i}`)).delayMs);
    assert.deepEqual(delays, [0, 0, 100]);
  });
});

describe('reservations', () => {
  test('cancel gives the booked request back, so the next one waits less', async () => {
    const { limiter } = setup({ rpm: 60 });
    assert.equal(ok(await reserve(limiter)).delayMs, 0);
    const second = ok(await reserve(limiter));
    assert.equal(second.delayMs, 1050);
    await second.cancel();
    await second.cancel();
    assert.equal(ok(await reserve(limiter)).delayMs, 1050);
  });

  test('cancel gives back nothing already promised to later reservations', async () => {
    const { limiter } = setup({ rpm: 60 });
    const first = ok(await reserve(limiter));
    assert.equal(ok(await reserve(limiter)).delayMs, 1050);
    await first.cancel();
    assert.equal(ok(await reserve(limiter)).delayMs, 2100);
  });

  test('cancel never refunds below a full bucket', async () => {
    const { limiter, clock } = setup({ rpm: 60 });
    const first = ok(await reserve(limiter));
    await clock.advance(5000);
    await first.cancel();
    assert.deepEqual([ok(await reserve(limiter)).delayMs, ok(await reserve(limiter)).delayMs], [0, 1050]);
  });

  test('until the provider shows it counts by use, settle keeps what was booked (max_tokens up front)', async () => {
    const { limiter } = setup({ tpm: 60_000, maxRequestTokens: 1000 });
    await ok(await reserve(limiter, 1000)).settle(400);
    // Nothing came back: 1000 more need the whole 1000 ms at 1000 tokens/s.
    assert.equal(ok(await reserve(limiter, 1000)).delayMs, 1000);
  });

  test('a provider whose headers show it counts by use gets the unused tokens back', async () => {
    const { limiter } = setup({ tpm: 60_000, maxRequestTokens: 1000 });
    const booked = ok(await reserve(limiter, 1000));
    // 60,000/min and full again in 400 ms: the bucket lacks 400 tokens, what the answer used, not
    // the 100 + 900 of prompt and max_tokens.
    await limiter.observe({
      status: 200,
      info: { ...noRateLimitInfo, limitTokens: 60_000, resetTokensMs: 400 },
      answer: { promptTokens: 100, totalTokens: 400, maxTokens: 900 },
    });
    await booked.settle(400);
    // 600 tokens came back: 1000 more need 400 ms at 1000 tokens/s.
    assert.equal(ok(await reserve(limiter, 1000)).delayMs, 400);
  });

  test('settle charges tokens beyond the estimate', async () => {
    const { limiter } = setup({ tpm: 60_000, maxRequestTokens: 1000 });
    await ok(await reserve(limiter, 500)).settle(1500);
    assert.equal(ok(await reserve(limiter, 1000)).delayMs, 1500);
  });

  test('a reservation past maxWait fails at once and books nothing', async () => {
    const { limiter } = setup({ rpm: 60 });
    ok(await reserve(limiter));
    const refused = await reserve(limiter, 0, 500);
    assert.equal(refused.ok, false);
    assert.equal(refused.delayMs, 1050);
    assert.equal(refused.ok === false && refused.reason, 'max_wait');
    assert.equal(
      refused.ok === false && refused.message,
      `the rate limit for ${key} (60 requests/min) has no room for this request yet; 1.1s is more than the 500ms allowed`,
    );
    assert.equal(ok(await reserve(limiter)).delayMs, 1050);
  });

  test('when TPM cannot be granted within maxWait, the RPM bucket is left untouched', async () => {
    const { limiter } = setup({ rpm: 600, tpm: 60_000, maxRequestTokens: 1000 });
    ok(await reserve(limiter, 1000));
    assert.equal((await reserve(limiter, 1000, 500)).ok, false);
    const delays = await inOrder(10, async () => ok(await reserve(limiter, 0)).delayMs);
    // The first request holds 100 ms of RPM; requests 2..11 go at max(0, k x 100 - 800).
    assert.deepEqual(delays, [0, 0, 0, 0, 0, 0, 0, 100, 200, 300]);
  });

  test('a request held back by TPM is charged to RPM at its real send time', async () => {
    const { limiter, db, clock } = setup({ rpm: 600, tpm: 60_000, maxRequestTokens: 1000 });
    ok(await reserve(limiter, 1000));
    assert.equal(ok(await reserve(limiter, 1000)).delayMs, 1000);
    // RPM counts it at 1000 ms: the burst it could have spent before then is gone, so the
    // two buckets never let a delayed request bunch up with later ones.
    const { now, keys } = await sqliteLimiterAdmin(db, { clock }).read();
    const rpm = keyStatuses(keys, now)[0]?.buckets.find((b) => b.kind === 'rpm');
    assert.equal(rpm?.available, 0);
  });

  test('a cost larger than one shard burst is refused with a config error instead of waiting forever', async () => {
    const { limiter } = setup({ tpm: 60_000, maxRequestTokens: 500 });
    await assert.rejects(
      () => reserve(limiter, 700),
      (e: unknown) =>
        isFlashcardsError(e) &&
        e.kind === 'config' &&
        e.message ===
          'request needs ~700 tokens but the TPM shard burst is 500; raise limiter.tpm or burst, or lower max_tokens',
    );
    assert.equal(ok(await reserve(limiter, 500)).delayMs, 0);
  });
});

describe('shards', () => {
  const plan = (rpm: number | null, tpm: number | null, over: Partial<LimiterSettings> = {}) =>
    planBuckets({ rpm, tpm }, settings(over)).shards;

  test("'auto' keeps every RPM shard at least 10 requests of burst, so low rates get one shard", async () => {
    assert.deepEqual(
      [
        plan(60, null),
        plan(600, null),
        plan(1199, null),
        plan(1200, null),
        plan(6000, null),
        plan(60_000, null),
      ],
      [1, 1, 1, 2, 8, 64],
    );
  });

  test("'auto' keeps every TPM shard at least one largest request", async () => {
    // 2M TPM: a 33,333-token second of burst holds 8 requests of 4000 tokens.
    assert.equal(plan(null, 2_000_000, { maxRequestTokens: 4000 }), 8);
    assert.equal(plan(6000, 2_000_000, { maxRequestTokens: 10_000 }), 2);
    assert.equal(plan(null, 60_000, { maxRequestTokens: 4000 }), 1);
  });

  test('an explicit shard count is honoured while every shard still holds one request', async () => {
    assert.equal(plan(6000, null, { shards: 4 }), 4);
    assert.equal(plan(300, null, { shards: 16 }), 5);
    assert.equal(plan(null, null, { shards: 16 }), 16);
  });

  test('the TPM burst is at least one largest request and at most a minute of budget', async () => {
    const p = planBuckets({ rpm: null, tpm: 60_000 }, settings({ maxRequestTokens: 4000 }));
    assert.equal(p.tpm?.burst, 4000);
    const q = planBuckets({ rpm: 600, tpm: 3000 }, settings({ maxRequestTokens: 4000 }));
    assert.equal(q.tpm?.burst, 3000);
  });
});

describe('learning from the provider', () => {
  test('observed limits lower the configured rate but never raise it', async () => {
    const { limiter } = setup({ rpm: 600, tpm: 100_000 });
    await limiter.observe({ status: 200, info: info({ 'x-ratelimit-limit-requests': '300' }) });
    assert.deepEqual(await limiter.snapshot(), { rpm: 300, tpm: 100_000, pausedUntil: null, learned: true });
    await limiter.observe({
      status: 200,
      info: info({ 'x-ratelimit-limit-requests': '1000', 'x-ratelimit-limit-tokens': '90000' }),
    });
    assert.deepEqual(await limiter.snapshot(), { rpm: 600, tpm: 90_000, pausedUntil: null, learned: true });
    await limiter.observe({ status: 200, info: info({ 'x-ratelimit-limit-tokens': '500000' }) });
    assert.deepEqual(await limiter.snapshot(), { rpm: 600, tpm: 100_000, pausedUntil: null, learned: false });
  });

  test('a learned rate is stored, so the next process starts from it', async () => {
    const file = tempDbFile();
    const first = setup({}, openDatabase(file));
    await first.limiter.observe({ status: 200, info: info({ 'x-ratelimit-limit-requests': '300' }) });
    const second = setup({}, openDatabase(file));
    assert.deepEqual(await second.limiter.snapshot(), {
      rpm: 300,
      tpm: null,
      pausedUntil: null,
      learned: true,
    });
    // Adopted at once: 200 ms a request, tau one second of 300/min less the slack (1000 - 200):
    // a burst of 4, then the k-th request at k x 200 - 800.
    const delays = await inOrder(
      7,
      async (i) => ok(await reserve(second.limiter, 0, Infinity, `j${i}`)).delayMs,
    );
    assert.deepEqual(delays, [0, 0, 0, 0, 200, 400, 600]);
  });

  test('with no limits known and none in the headers, nothing is throttled', async () => {
    const { limiter } = setup({});
    await ok(await reserve(limiter)).settle(10);
    await limiter.observe({ status: 200, info: info({ 'content-type': 'application/json' }) });
    const delays = await inOrder(1000, async (i) => ok(await reserve(limiter, 500, 0, `j${i}`)).delayMs);
    assert.equal(Math.max(...delays), 0);
    assert.deepEqual(await limiter.snapshot(), { rpm: null, tpm: null, pausedUntil: null, learned: false });
  });

  test('with nothing known yet, one probe goes first and its headers set the pace at once', async () => {
    const { limiter } = setup({});
    const probe = ok(await reserve(limiter, 0, Infinity, 'a'));
    const held = await reserve(limiter, 0, Infinity, 'b');
    assert.equal(held.ok, false);
    assert.equal(held.delayMs, 250);
    assert.equal(held.ok === false && held.reason, 'paused');
    await limiter.observe({
      status: 200,
      info: info({ 'x-ratelimit-limit-requests': '300', 'x-ratelimit-remaining-requests': '299' }),
    });
    await probe.settle(0);
    assert.equal((await limiter.snapshot()).rpm, 300);
    // 300 RPM as above (the probe was sent before there was a bucket): k x 200 - 800.
    const delays = await inOrder(6, async (i) => ok(await reserve(limiter, 0, Infinity, `j${i}`)).delayMs);
    assert.deepEqual(delays, [0, 0, 0, 0, 200, 400]);
  });

  test('requests held back by the probe are woken as soon as it is answered or given back', async () => {
    const { limiter } = setup({});
    const probe = ok(await reserve(limiter, 0, Infinity, 'a'));
    const held = await reserve(limiter, 0, Infinity, 'b');
    const wake = held.ok ? undefined : held.wake;
    assert.ok(wake, 'a held request gets a wake-up');
    let woken = false;
    void wake.then(() => {
      woken = true;
    });
    await Promise.resolve();
    assert.equal(woken, false, 'not before the answer');
    await limiter.observe({ status: 200, info: info() });
    await Promise.resolve();
    assert.equal(woken, true);
    await probe.settle(0);

    const other = setup({}).limiter;
    await ok(await reserve(other, 0, Infinity, 'a')).cancel();
    const second = ok(await reserve(other, 0, Infinity, 'b'));
    const waiting = await reserve(other, 0, Infinity, 'c');
    await second.cancel();
    await (waiting.ok ? Promise.reject(new Error('should wait')) : waiting.wake);
    assert.equal((await reserve(other, 0, Infinity, 'c')).ok, true, 'the next request probes');
  });

  test('a cancelled probe lets the next request probe', async () => {
    const { limiter } = setup({});
    await ok(await reserve(limiter, 0, Infinity, 'a')).cancel();
    assert.equal((await reserve(limiter, 0, Infinity, 'b')).ok, true);
    assert.equal((await reserve(limiter, 0, Infinity, 'c')).ok, false);
  });

  test('remaining 0 with a reset pauses the key until the budget is back', async () => {
    const { limiter, clock } = setup({});
    await limiter.observe({
      status: 200,
      info: info({ 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '1.5s' }),
    });
    assert.equal((await limiter.snapshot()).pausedUntil, clock.now() + 1500);
    assert.equal(ok(await reserve(limiter)).delayMs, 1500);
  });

  test('429s without headers and no known limit converge by multiplicative decrease and additive increase', async () => {
    const { limiter, clock } = setup({});
    await limiter.observe({ status: 200, info: info() });
    for (let i = 0; i < 100; i++) ok(await reserve(limiter, 0, Infinity, `j${i}`));
    await clock.advance(1000);
    for (let i = 0; i < 60; i++) await limiter.observe({ status: 200, info: info() });
    await limiter.observe({ status: 429, info: info() });
    // The provider accepted 61 requests in the last second: 70% of 3660/min, growing 5% a second
    // once the requests booked at the old rate are out and answered (after the 1 s pause + 1 s).
    assert.deepEqual(await limiter.snapshot(), {
      rpm: 2562,
      tpm: null,
      pausedUntil: clock.now() + 1000,
      learned: true,
    });
    await clock.advance(500);
    await limiter.observe({ status: 429, info: info() });
    assert.equal((await limiter.snapshot()).rpm, 2562);
    await clock.advance(10_500);
    assert.equal(Math.round((await limiter.snapshot()).rpm ?? 0), 3715);
    await limiter.observe({ status: 429, info: info() });
    assert.equal(Math.round((await limiter.snapshot()).rpm ?? 0), 2600);
  });

  test('a 429 decreases from the rate accepted by every instance on the database file, not one share', async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'state.db');
    const clock = new FakeClock();
    const a = setup({}, openDatabase(file), clock).limiter;
    const b = setup({}, openDatabase(file), clock).limiter;
    for (let i = 0; i < 30; i++) {
      await a.observe({ status: 200, info: info() });
      await b.observe({ status: 200, info: info() });
    }
    await clock.advance(1000);
    await b.observe({ status: 200, info: info() });
    await a.observe({ status: 429, info: info() });
    // a saw 30 accepted in the last second and b 31: 70% of (1800 + 1860)/min, for both.
    assert.equal((await a.snapshot()).rpm, 2562);
    // b re-reads the shared row within 150 ms; growth waits for the pause and the gap after it.
    await clock.advance(150);
    assert.equal((await b.snapshot()).rpm, 2562);
  });

  test('a 429 before a second of history paces at the opening burst instead of cutting below it', async () => {
    const { limiter, clock } = setup({});
    await limiter.observe({ status: 200, info: info() });
    for (let i = 0; i < 20; i++) ok(await reserve(limiter, 0, Infinity, `j${i}`));
    await clock.advance(180);
    await limiter.observe({ status: 429, info: info() });
    // 20 admitted in 180 ms, read as 20 a second; the next 429 decreases from a measured rate.
    assert.deepEqual(await limiter.snapshot(), {
      rpm: 1200,
      tpm: null,
      pausedUntil: clock.now() + 1000,
      learned: true,
    });
  });

  test('a provider that sends limit headers is never put on AIMD', async () => {
    const { limiter } = setup({});
    await limiter.observe({
      status: 429,
      info: info({ 'x-ratelimit-limit-requests': '300', 'retry-after': '2' }),
    });
    assert.equal((await limiter.snapshot()).rpm, 300);
  });
});

describe('429 pauses', () => {
  test('a 429 with Retry-After pauses every limiter instance on the same database file', async () => {
    const file = tempDbFile();
    const clock = new FakeClock();
    const a = setup({ rpm: 600 }, openDatabase(file), clock).limiter;
    const b = setup({ rpm: 600 }, openDatabase(file), clock).limiter;
    const unknown = setup({}, openDatabase(file), clock).limiter;
    await a.observe({ status: 429, info: info({ 'retry-after': '3' }) });

    const refused = await reserve(b, 0, 1000);
    assert.equal(refused.ok, false);
    assert.equal(refused.ok === false && refused.reason, 'paused');
    assert.equal(refused.delayMs, 3000);
    assert.match(
      refused.ok === false ? refused.message : '',
      /paused until .* \(429 from the provider \(Retry-After\)\)/,
    );
    assert.equal(ok(await reserve(b, 0, 10_000)).delayMs, 3000);
    // Limiters without buckets re-read the pause within 150 ms.
    await clock.advance(150);
    assert.equal((await unknown.snapshot()).pausedUntil, clock.now() + 2850);
    assert.equal(ok(await reserve(unknown)).delayMs, 2850);
  });

  test('after a pause one request per shard goes at once, not a full burst', async () => {
    const { limiter } = setup({ rpm: 600 });
    await limiter.observe({ status: 429, info: info({ 'retry-after': '1' }) });
    const delays = await inOrder(4, async (i) => ok(await reserve(limiter, 0, Infinity, `j${i}`)).delayMs);
    assert.deepEqual(delays, [1000, 1100, 1200, 1300]);
  });

  test('429s without Retry-After pause 1 s, then 2 s while they keep coming, and reset after a success', async () => {
    const { limiter, clock } = setup({ rpm: 600 });
    const pause = async () => ((await limiter.snapshot()).pausedUntil ?? clock.now()) - clock.now();
    await limiter.observe({ status: 429, info: info() });
    assert.equal(await pause(), 1000);
    // Answers to requests already in flight belong to the same episode.
    await clock.advance(100);
    await limiter.observe({ status: 429, info: info() });
    assert.equal(await pause(), 900);
    await clock.advance(900);
    await limiter.observe({ status: 429, info: info() });
    assert.equal(await pause(), 2000);
    await clock.advance(2000);
    await limiter.observe({ status: 200, info: info() });
    await limiter.observe({ status: 429, info: info() });
    assert.equal(await pause(), 1000);
  });
});

describe('the layout stored for limiter status', () => {
  /** A store that counts its layout writes and remembers the rate of the last one. */
  function countingLayouts(store: LimiterStore) {
    const seen = { writes: 0, rpm: null as number | null };
    const counting = new Proxy(store, {
      get(target, prop) {
        if (prop === 'writeLayout') {
          return (k: string, layout: Parameters<LimiterStore['writeLayout']>[1]) => {
            seen.writes++;
            seen.rpm = layout.rpm;
            return target.writeLayout(k, layout);
          };
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    return { counting, seen };
  }

  test('while AIMD grows the rate it is rewritten every 5 s, not every refresh; a decrease at once', async () => {
    const clock = new FakeClock();
    const { counting, seen } = countingLayouts(sqliteLimiterStore(openDatabase(':memory:'), { clock }));
    const limiter = createLimiter(counting, key, settings({}), { clock });
    await limiter.observe({ status: 200, info: info() });
    for (let i = 0; i < 100; i++) ok(await reserve(limiter, 0, Infinity, `j${i}`));
    await clock.advance(1000);
    for (let i = 0; i < 60; i++) await limiter.observe({ status: 200, info: info() });
    await limiter.observe({ status: 429, info: info() });
    assert.equal(seen.rpm, 2562);
    const before = seen.writes;
    // 30 s of requests every 100 ms: growth starts 2 s after the 429 and runs 5% of 2562 a second.
    for (let i = 0; i < 300; i++) {
      await clock.advance(100);
      ok(await reserve(limiter, 0, Infinity, `g${i}`));
    }
    // Written at 5, 10, ... 30 s (not every 200 ms as it drifts past 1%); the last 28 s into growth.
    assert.equal(seen.writes - before, 6);
    assert.equal(Math.round(seen.rpm ?? 0), Math.round(2562 * (1 + 0.05 * 28)));
    await limiter.observe({ status: 429, info: info() });
    assert.equal(seen.writes - before, 7);
    assert.equal(seen.rpm, (await limiter.snapshot()).rpm);
  });
});

describe('settings', () => {
  test('invalid settings are config errors naming the setting and the value', () => {
    assert.throws(() => setup({ rpm: -5 }), /limiter\.rpm must be a number > 0, got -5/);
    assert.throws(() => setup({ burstSeconds: 0 }), /limiter\.burstSeconds must be a number > 0, got 0/);
    assert.throws(
      () => setup({ shards: 2.5 }),
      /limiter\.shards must be 'auto' or an integer 1-1024, got 2\.5/,
    );
  });
});
