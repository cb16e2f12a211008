/**
 * The contract of a LimiterStore and its LimiterAdmin, for every backend: each test opens a fresh
 * backend on a FakeClock, and `store()` called twice is two processes sharing it. Exact values:
 * the rules are the pure functions of src/limiter/gcra.ts and after-429.ts, and a backend that
 * mirrors them (a Redis script) must give the same numbers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../src/core/clock.ts';
import type { BookRequest, BucketCost } from '../../src/limiter/gcra.ts';
import { parseRateLimitHeaders } from '../../src/limiter/headers.ts';
import type { LimiterSettings } from '../../src/limiter/settings.ts';
import type { LimiterAdmin, LimiterStore, Observed429, RateShare } from '../../src/limiter/store.ts';

export interface LimiterBackend {
  /** A new store on the backend's shared state: another process. */
  store(): Promise<LimiterStore>;
  admin(): Promise<LimiterAdmin>;
  close(): Promise<void>;
}

const key = 'https://api.test/v1|model|0123456789ab';
/** 600 RPM on one shard: 100 ms a request, tau 10 x 100 ms less 200 ms of slack. */
const rpm: BucketCost = { kind: 'rpm', costMs: 100, tauMs: 800 };
/** 60,000 TPM on one shard, 1000 tokens of burst: 1 ms a token. */
const tpm = (tokens: number): BucketCost => ({ kind: 'tpm', costMs: tokens, tauMs: 1000 });

function request(over: Partial<BookRequest> = {}): BookRequest {
  return { shards: [0, 0], buckets: [rpm], maxWaitMs: Number.POSITIVE_INFINITY, refunds: [], ...over };
}

const info = (h: Record<string, string> = {}) => parseRateLimitHeaders(new Headers(h), 0);
const configured600: LimiterSettings = { rpm: 600, burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 };
const unknown: LimiterSettings = { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 };
const share = (over: Partial<RateShare> = {}): RateShare => ({
  instance: 'a',
  accepted: 0,
  admitted: 0,
  measuringMs: 0,
  ...over,
});
const observed = (over: Partial<Observed429> = {}): Observed429 => ({
  info: info(),
  settings: configured600,
  share: share(),
  ...over,
});

export function limiterStoreConformance(
  label: string,
  open: (clock: FakeClock) => Promise<LimiterBackend>,
): void {
  /** A test on a fresh backend and clock; `t0` is the clock's start. */
  const it = (name: string, fn: (b: LimiterBackend, clock: FakeClock, t0: number) => Promise<void>): void => {
    test(name, async () => {
      const clock = new FakeClock();
      const backend = await open(clock);
      try {
        await fn(backend, clock, clock.now());
      } finally {
        await backend.close();
      }
    });
  };

  /** Every stored TAT of the key, as `kind:shard` -> TAT. */
  async function tats(b: LimiterBackend): Promise<Record<string, number>> {
    const { keys } = await (await b.admin()).read();
    const stored = keys.find((k) => k.row.key === key)?.shards ?? [];
    return Object.fromEntries(stored.map((s) => [`${s.kind}:${s.shard}`, s.tat]));
  }

  /** A store on which the key has its row, so admin.read lists it (bookings alone write no row). */
  async function keyed(b: LimiterBackend): Promise<LimiterStore> {
    const store = await b.store();
    await store.markObserved(key);
    return store;
  }

  async function delays(store: LimiterStore, n: number, req: BookRequest = request()): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push((await store.book(key, req)).delayMs);
    return out;
  }

  describe(`LimiterStore conformance: ${label}`, () => {
    describe('booking', () => {
      it('a key never used reads as undefined, and its first booking goes at once on a full shard', async (b, _, t0) => {
        const store = await b.store();
        assert.equal(await store.readKey(key), undefined);
        assert.deepEqual(await store.book(key, request({ shards: [0, 1] })), {
          ok: true,
          now: t0,
          delayMs: 0,
          charges: [{ kind: 'rpm', shard: 0, costMs: 100, after: t0 + 100 }],
        });
      });

      it('a shard admits while TAT - send time stays within tau: 8 at once, then one per interval', async (b) => {
        // The k-th booking makes TAT k x 100 and goes at max(0, k x 100 - 800).
        assert.deepEqual(await delays(await b.store(), 12), [0, 0, 0, 0, 0, 0, 0, 0, 100, 200, 300, 400]);
      });

      it('of the two shards the fuller one (earlier TAT) is charged, the first on a tie', async (b, _, t0) => {
        const store = await keyed(b);
        await delays(store, 2, request({ shards: [0, 0] }));
        const pick = async (shards: [number, number]) => {
          const booking = await store.book(key, request({ shards }));
          return booking.ok ? booking.charges.map((c) => c.shard) : [];
        };
        assert.deepEqual([await pick([0, 1]), await pick([1, 0]), await pick([0, 1])], [[1], [1], [0]]);
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 300, 'rpm:1': t0 + 200 });
      });

      it('every bucket is charged as of one send time, the latest any of them allows', async (b, _, t0) => {
        const store = await b.store();
        await store.book(key, request({ buckets: [rpm, tpm(1000)] }));
        assert.deepEqual(await store.book(key, request({ buckets: [rpm, tpm(1000)] })), {
          ok: true,
          now: t0,
          delayMs: 1000,
          charges: [
            { kind: 'rpm', shard: 0, costMs: 100, after: t0 + 1100 },
            { kind: 'tpm', shard: 0, costMs: 1000, after: t0 + 2000 },
          ],
        });
      });

      it('a booking that would wait longer than maxWait is refused and charges nothing', async (b, _, t0) => {
        const store = await keyed(b);
        await store.book(key, request({ buckets: [rpm, tpm(1000)] }));
        const refused = await store.book(key, request({ buckets: [rpm, tpm(1000)], maxWaitMs: 999 }));
        assert.deepEqual(refused, { ok: false, now: t0, delayMs: 1000, pausedBy: null });
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 100, 'tpm:0': t0 + 1000 });
      });

      it('refunds are applied before the booking, never below now, and never to an unused shard', async (b, _, t0) => {
        const store = await keyed(b);
        await store.book(key, request({ buckets: [tpm(1000)] }));
        const refunded = await store.book(key, {
          ...request({ buckets: [tpm(1000)] }),
          refunds: [
            { kind: 'tpm', shard: 0, ms: 600 },
            { kind: 'tpm', shard: 3, ms: 600 },
          ],
        });
        assert.equal(refunded.delayMs, 400);
        await store.book(key, { ...request({ buckets: [] }), refunds: [{ kind: 'tpm', shard: 0, ms: 1e9 }] });
        assert.deepEqual(await tats(b), { 'tpm:0': t0 });
      });
    });

    describe('giving back and charging more', () => {
      it('cancel gives back only what later bookings were not promised', async (b, _, t0) => {
        const store = await keyed(b);
        const slow: BookRequest = request({ buckets: [{ kind: 'rpm', costMs: 1000, tauMs: 1000 }] });
        const first = await store.book(key, slow);
        const second = await store.book(key, slow);
        assert.ok(first.ok && second.ok);
        await store.cancel(key, first.charges);
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 2000 });
        await store.cancel(key, second.charges);
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 1000 });
      });

      it('cancel never gives back below now', async (b, clock) => {
        const store = await keyed(b);
        const booking = await store.book(key, request());
        assert.ok(booking.ok);
        await clock.advance(5000);
        await store.cancel(key, booking.charges);
        assert.deepEqual(await tats(b), { 'rpm:0': clock.now() });
      });

      it('charge adds to max(TAT, now) at once, and leaves an unused shard full', async (b, clock, t0) => {
        const store = await keyed(b);
        await store.book(key, request({ buckets: [tpm(1000)] }));
        await store.charge(key, 'tpm', 0, 500);
        await store.charge(key, 'tpm', 1, 500);
        assert.deepEqual(await tats(b), { 'tpm:0': t0 + 1500 });
        await clock.advance(5000);
        await store.charge(key, 'tpm', 0, 500);
        assert.deepEqual(await tats(b), { 'tpm:0': t0 + 5500 });
      });

      it('restart raises every shard to at least now + ahead and never lowers one', async (b, _, t0) => {
        const store = await keyed(b);
        await store.book(key, request({ buckets: [{ kind: 'rpm', costMs: 5000, tauMs: 5000 }] }));
        await store.restart(key, [
          { kind: 'rpm', shards: 3, aheadMs: 1000 },
          { kind: 'tpm', shards: 1, aheadMs: 200 },
        ]);
        assert.deepEqual(await tats(b), {
          'rpm:0': t0 + 5000,
          'rpm:1': t0 + 1000,
          'rpm:2': t0 + 1000,
          'tpm:0': t0 + 200,
        });
      });
    });

    describe('the key row', () => {
      it('how the provider counts tokens is stored, seen by another process, and can be forgotten', async (b) => {
        const one = await b.store();
        const other = await b.store();
        assert.equal((await one.setTokenAccounting(key, 'usage')).token_accounting, 'usage');
        assert.equal((await other.readKey(key))?.token_accounting, 'usage');
        assert.equal((await other.setTokenAccounting(key, null)).token_accounting, null);
        assert.equal((await one.readKey(key))?.token_accounting, null);
      });

      it('the latency a run sees is stored with the backend time, and an admin read shows it', async (b, clock, t0) => {
        const store = await b.store();
        await store.recordLatency(key, { p50Ms: 2800, p75Ms: 3600 });
        await clock.advance(1000);
        await store.recordLatency(key, { p50Ms: 3000, p75Ms: 3900 });
        const row = (await (await b.admin()).read()).keys.find((k) => k.row.key === key)?.row;
        assert.deepEqual(
          [row?.latency_p50_ms, row?.latency_p75_ms, row?.latency_at],
          [3000, 3900, t0 + 1000],
        );
      });

      it('a pause holds every booking until it ends; a shorter one changes nothing', async (b, _, t0) => {
        const store = await b.store();
        const row = await store.pause(key, 3000, 'provider reported 0 requests remaining');
        assert.deepEqual(
          [row.paused_until, row.pause_reason],
          [t0 + 3000, 'provider reported 0 requests remaining'],
        );
        const shorter = await store.pause(key, 1000, 'other');
        assert.deepEqual(
          [shorter.paused_until, shorter.pause_reason],
          [t0 + 3000, 'provider reported 0 requests remaining'],
        );
        assert.deepEqual(await store.book(key, request({ maxWaitMs: 1000 })), {
          ok: false,
          now: t0,
          delayMs: 3000,
          pausedBy: 'provider reported 0 requests remaining',
        });
        assert.equal((await store.book(key, request())).delayMs, 3000);
      });

      it('a refusal names the pause only when the pause, not the buckets, holds the request', async (b) => {
        const store = await b.store();
        await store.pause(key, 500, 'paused');
        const slow = request({ buckets: [{ kind: 'rpm', costMs: 1000, tauMs: 1000 }] });
        await store.book(key, slow);
        const refused = await store.book(key, { ...slow, maxWaitMs: 0 });
        assert.deepEqual([refused.ok, refused.delayMs, !refused.ok && refused.pausedBy], [false, 1500, null]);
      });

      it('learned limits keep what a response did not report; the key is observed from the first', async (b, clock, t0) => {
        const store = await b.store();
        const first = await store.learnLimits(key, { rpm: 300, tpm: null });
        assert.deepEqual(
          [first.header_rpm, first.header_tpm, first.header_at, first.observed_at],
          [300, null, t0, t0],
        );
        await clock.advance(1000);
        const second = await store.learnLimits(key, { rpm: null, tpm: 9000 });
        assert.deepEqual(
          [second.header_rpm, second.header_tpm, second.header_at, second.observed_at],
          [300, 9000, t0 + 1000, t0],
        );
        assert.deepEqual(await store.readKey(key), second);
      });

      it('markObserved sets observed_at once', async (b, clock, t0) => {
        const store = await b.store();
        assert.equal((await store.markObserved(key)).observed_at, t0);
        await clock.advance(1000);
        assert.equal((await store.markObserved(key)).observed_at, t0);
      });

      it('the layout is stored as written', async (b, _, t0) => {
        const store = await b.store();
        const row = await store.writeLayout(key, {
          shards: 2,
          rpm: 600,
          rpmBurst: 10,
          tpm: 90_000,
          tpmBurst: 1500,
          configuredRpm: 600,
          configuredTpm: null,
          maxRequestTokens: 1000,
        });
        assert.deepEqual(
          [
            row.shards,
            row.rpm,
            row.rpm_burst,
            row.tpm,
            row.tpm_burst,
            row.configured_rpm,
            row.configured_tpm,
            row.max_request_tokens,
            row.updated_at,
          ],
          [2, 600, 10, 90_000, 1500, 600, null, 1000, t0],
        );
      });
    });

    describe('429s', () => {
      it('pause 1 s, then 2 s while they keep coming; 429s in flight are the same episode; a success clears the strikes', async (b, clock, t0) => {
        const store = await b.store();
        const first = await store.record429(key, observed());
        assert.deepEqual(
          [first.paused_until, first.strikes, first.pause_reason],
          [t0 + 1000, 1, '429 from the provider (no Retry-After)'],
        );
        await clock.advance(100);
        const inFlight = await store.record429(key, observed());
        assert.deepEqual([inFlight.paused_until, inFlight.strikes], [t0 + 1000, 1]);
        await clock.advance(900);
        const second = await store.record429(key, observed());
        assert.deepEqual(
          [second.paused_until, second.strikes, second.pause_reason],
          [t0 + 3000, 2, '429 from the provider (no Retry-After, 2 in a row)'],
        );
        const retryAfter = await store.record429(key, observed({ info: info({ 'retry-after': '5' }) }));
        assert.deepEqual([retryAfter.paused_until, retryAfter.strikes], [t0 + 6000, 2]);
        assert.equal((await store.clearStrikes(key)).strikes, 0);
      });

      it('after the pause every shard of the buckets restarts one request before its tau', async (b, _, t0) => {
        const store = await keyed(b);
        await store.record429(
          key,
          observed({ info: info({ 'retry-after': '2' }), settings: { ...configured600, tpm: 60_000 } }),
        );
        // RPM: 2 s + 800 - 100 ms; TPM (1000 tokens a shard, one request of 1000, so tau stays
        // one request): 2 s + 0.
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 2700, 'tpm:0': t0 + 2000 });
      });

      it('without limit headers and no known rate, the decrease starts from every fresh share of the key', async (b, clock, t0) => {
        const [one, two] = [await b.store(), await b.store()];
        await two.publishRates(key, share({ instance: 'old', accepted: 100_000, measuringMs: 5000 }));
        await clock.advance(3001);
        await two.publishRates(key, share({ instance: 'b', accepted: 1860, measuringMs: 2000 }));
        const row = await one.record429(
          key,
          observed({
            settings: unknown,
            share: share({ accepted: 1800, admitted: 2000, measuringMs: 2000 }),
          }),
        );
        // 70% of 1800 + 1860 accepted a minute (the share older than 3 s is left out); growth
        // waits for the 1 s pause and 1 s more.
        assert.deepEqual([row.aimd_rpm, row.aimd_at], [2562, t0 + 3001 + 2000]);
        // Until then further 429s answer requests booked at the old rate.
        await clock.advance(1000);
        const later = await one.record429(
          key,
          observed({ settings: unknown, share: share({ accepted: 10 }) }),
        );
        assert.deepEqual([later.aimd_rpm, later.aimd_at], [2562, t0 + 3001 + 2000]);
      });

      it('after a decrease, growth waits until every request booked at the old rate has gone', async (b, clock, t0) => {
        const store = await keyed(b);
        const first = await store.record429(
          key,
          observed({ settings: unknown, share: share({ admitted: 600, measuringMs: 500 }) }),
        );
        assert.deepEqual([first.aimd_rpm, first.aimd_at], [600, t0 + 2000]);
        // 600 RPM on one shard (100 ms, tau 800), restarted at 1000 + 800 - 100 = 1700: the 30th
        // booking makes TAT 1700 + 3000 and goes at 4700 - 800 = 3900.
        for (let i = 0; i < 30; i++) await store.book(key, request());
        assert.deepEqual(await tats(b), { 'rpm:0': t0 + 4700 });
        await clock.advance(2500);
        const second = await store.record429(
          key,
          observed({
            settings: unknown,
            info: info({ 'retry-after': '0' }),
            share: share({ accepted: 600, measuringMs: 5000 }),
          }),
        );
        // 70% of the 600 accepted (below the grown 615); growth starts 1 s after the last booked
        // send time (3900), not 1 s after this 429.
        assert.deepEqual([second.aimd_rpm, second.aimd_at], [420, t0 + 4900]);
      });

      it('a first 429 within a second of history paces at the opening burst', async (b, _, t0) => {
        const store = await b.store();
        const row = await store.record429(
          key,
          observed({ settings: unknown, share: share({ admitted: 1200, measuringMs: 180 }) }),
        );
        assert.deepEqual([row.aimd_rpm, row.aimd_at], [1200, t0 + 2000]);
      });

      it('a provider that sends limit headers, or a configured rate, is never put on AIMD', async (b) => {
        const store = await b.store();
        const headers = await store.record429(
          key,
          observed({
            settings: unknown,
            info: info({ 'x-ratelimit-remaining-requests': '0' }),
            share: share({ accepted: 600 }),
          }),
        );
        const configured = await store.record429(
          key,
          observed({ share: share({ accepted: 600, measuringMs: 5000 }) }),
        );
        assert.deepEqual([headers.aimd_rpm, configured.aimd_rpm], [null, null]);
      });
    });

    describe('two processes on one backend', () => {
      it('spend one budget, and see one pause and one set of learned limits', async (b, _, t0) => {
        const [one, two] = [await b.store(), await b.store()];
        // one spends the burst of 8; two's booking is the 9th: 900 - 800.
        assert.deepEqual(await delays(one, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
        assert.deepEqual([...(await delays(two, 1)), ...(await delays(one, 1))], [100, 200]);
        await one.pause(key, 5000, 'paused by one');
        await one.learnLimits(key, { rpm: 300, tpm: null });
        const seen = await two.readKey(key);
        assert.deepEqual([seen?.paused_until, seen?.header_rpm], [t0 + 5000, 300]);
        assert.equal((await two.book(key, request({ maxWaitMs: 0 }))).ok, false);
      });
    });

    describe('admin', () => {
      it('read lists every key in order with its shards, and the backend time', async (b, clock) => {
        const store = await b.store();
        assert.deepEqual(await (await b.admin()).read(), { now: clock.now(), keys: [] });
        await store.markObserved('b');
        await store.markObserved('a');
        await store.book('b', request({ shards: [1, 1], buckets: [tpm(10), rpm] }));
        await store.book('a', request());
        await clock.advance(10);
        const { now, keys } = await (await b.admin()).read();
        assert.equal(now, clock.now());
        assert.deepEqual(
          keys.map((k) => [k.row.key, k.shards.map((s) => `${s.kind}:${s.shard}`)]),
          [
            ['a', ['rpm:0']],
            ['b', ['rpm:1', 'tpm:1']],
          ],
        );
      });

      it('reset forgets the keys starting with a prefix, or all of them', async (b) => {
        const store = await b.store();
        for (const k of ['https://a/1', 'https://a/2', 'https://b/1']) {
          await store.learnLimits(k, { rpm: 300, tpm: null });
          await store.book(k, request({ maxWaitMs: 0 }));
        }
        const admin = await b.admin();
        assert.deepEqual(await admin.reset('https://a/'), ['https://a/1', 'https://a/2']);
        assert.equal(await store.readKey('https://a/1'), undefined);
        assert.deepEqual(
          (await admin.read()).keys.map((k) => k.row.key),
          ['https://b/1'],
        );
        assert.deepEqual(await admin.reset('https://nowhere'), []);
        assert.deepEqual(await admin.reset(undefined), ['https://b/1']);
        assert.deepEqual((await admin.read()).keys, []);
      });
    });
  });
}
