import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { CacheAdmin } from '../../src/cache/admin.ts';
import { decodeBody } from '../../src/cache/codec.ts';
import type { CacheSettings, ResponseCache } from '../../src/cache/store.ts';
import { FakeClock } from '../../src/core/clock.ts';
import { type Random, seededRandom } from '../../src/core/random.ts';
import { GROUP_COMMIT_MS } from '../../src/db/write-behind.ts';

/** A backend opened for one test: every `connect()` is another process on the same cache. */
export interface CacheBackend {
  connect(settings: CacheSettings, random: Random): Promise<ResponseCache>;
  admin(): Promise<CacheAdmin>;
  close(): Promise<void>;
}

const DAY = 86_400_000;
const settings = (over: Partial<CacheSettings> = {}): CacheSettings => ({
  ttlMs: DAY,
  jitter: 0,
  compressThresholdBytes: 1024,
  ...over,
});
/** Keys as the cache makes them: 64 hex digits. */
const hex = (c: string): string => c.repeat(64);
/** ~3 KB of card JSON with Korean and emoji: compresses well above the threshold. */
const big = JSON.stringify({
  word: '사과',
  examples: Array.from({ length: 40 }, (_, i) => ({ ko: `사과 ${i}개 🍎`, en: `${i} apples` })),
});
const bigBytes = Buffer.byteLength(big);

/**
 * The contract of `ResponseCache` and `CacheAdmin`, for every backend: `open` gives a fresh, empty
 * backend whose time is `clock`. A put is visible to another process once its group commit is due
 * (cache.db: GROUP_COMMIT_MS; Redis: at once), so cross-process cases advance the clock that far.
 * Exact assertions on fake time; nothing here waits on the real clock.
 */
export function cacheStoreConformance(
  label: string,
  open: (clock: FakeClock) => Promise<CacheBackend>,
): void {
  describe(`ResponseCache and CacheAdmin conformance: ${label}`, () => {
    const backends: CacheBackend[] = [];
    const caches: ResponseCache[] = [];
    afterEach(async () => {
      for (const c of caches.splice(0)) await c.close();
      for (const b of backends.splice(0)) await b.close();
    });

    async function setup(over: Partial<CacheSettings> = {}, random: Random = seededRandom(1)) {
      const clock = new FakeClock();
      const backend = await open(clock);
      backends.push(backend);
      const connect = async (
        s: Partial<CacheSettings> = over,
        r: Random = random,
      ): Promise<ResponseCache> => {
        const cache = await backend.connect(settings(s), r);
        caches.push(cache);
        return cache;
      };
      return {
        clock,
        t0: clock.now(),
        backend,
        cache: await connect(),
        connect,
        admin: await backend.admin(),
      };
    }

    describe('get and put', () => {
      test('misses a key that was never stored, stale or not', async () => {
        const { cache } = await setup();
        assert.equal(await cache.get(hex('a')), undefined);
        assert.equal(await cache.get(hex('a'), { allowStale: true }), undefined);
      });

      test('answers a put with its body, model, creation time and expiry', async () => {
        const { cache, t0 } = await setup();
        await cache.put(hex('a'), { body: '{"word":"사과"}', model: 'gpt-4o', term: '사과', stage: 'cards' });
        assert.deepEqual(await cache.get(hex('a')), {
          body: '{"word":"사과"}',
          stale: false,
          createdAt: t0,
          expiresAt: t0 + DAY,
          model: 'gpt-4o',
        });
      });

      test('fresh until its expiry; from then on a miss, and a stale hit with allowStale', async () => {
        const { cache, clock, t0 } = await setup({ ttlMs: 1000 });
        await cache.put(hex('a'), { body: 'x', model: 'm' });
        await clock.advance(999);
        assert.equal((await cache.get(hex('a')))?.stale, false);
        await clock.advance(1);
        assert.equal(await cache.get(hex('a')), undefined);
        assert.deepEqual(await cache.get(hex('a'), { allowStale: true }), {
          body: 'x',
          stale: true,
          createdAt: t0,
          expiresAt: t0 + 1000,
          model: 'm',
        });
        await clock.advance(DAY);
        assert.equal((await cache.get(hex('a'), { allowStale: true }))?.body, 'x');
      });

      test('ttl 0: an entry never expires', async () => {
        const { cache, clock, t0 } = await setup({ ttlMs: 0 });
        await cache.put(hex('a'), { body: 'forever', model: 'm' });
        await clock.advance(3650 * DAY);
        assert.deepEqual(await cache.get(hex('a')), {
          body: 'forever',
          stale: false,
          createdAt: t0,
          expiresAt: null,
          model: 'm',
        });
      });

      test('each lifetime is ttl x (1 + jitter x r), r the next draw of the random source, in whole ms', async () => {
        const { cache, t0 } = await setup({ ttlMs: 30 * DAY, jitter: 0.1 }, seededRandom(7));
        const draws = seededRandom(7);
        for (let i = 0; i < 20; i++) {
          const key = hex(i.toString(16));
          await cache.put(`${key}${i}`, { body: 'x', model: 'm' });
          const expected = t0 + Math.round(30 * DAY * (1 + 0.1 * draws()));
          assert.equal((await cache.get(`${key}${i}`))?.expiresAt, expected);
        }
      });

      test('a second put replaces body, model, term and stage, and restarts the lifetime', async () => {
        const { cache, clock, admin } = await setup({ ttlMs: 1000 });
        await cache.put(hex('a'), { body: 'old', model: 'm', term: '사과', stage: 'cards' });
        await clock.advance(1500);
        await cache.put(hex('a'), { body: 'new', model: 'm2' });
        const now = clock.now();
        assert.deepEqual(await cache.get(hex('a')), {
          body: 'new',
          stale: false,
          createdAt: now,
          expiresAt: now + 1000,
          model: 'm2',
        });
        await cache.close();
        const [shown] = await admin.show('a', 5);
        assert.deepEqual([shown?.term, shown?.stage, shown?.model], [null, null, 'm2']);
      });

      test('bodies round-trip byte for byte; larger than the threshold they are compressed', async () => {
        const { cache, admin } = await setup();
        const small = '가'.repeat(341) + 'a'; // exactly 1024 bytes: not above the threshold
        await cache.put(hex('a'), { body: big, model: 'm' });
        await cache.put(hex('b'), { body: small, model: 'm' });
        assert.equal((await cache.get(hex('a')))?.body, big);
        assert.equal((await cache.get(hex('b')))?.body, small);
        await cache.close();
        const [a] = await admin.show('a', 5);
        const [b] = await admin.show('b', 5);
        assert.equal(a?.codec, 'deflate');
        assert.equal(a?.originalBytes, bigBytes);
        assert.equal(a?.storedBytes, a?.body.length);
        assert.ok(a && a.storedBytes < bigBytes / 2, `stored ${a?.storedBytes} of ${bigBytes}`);
        assert.equal(decodeBody(a?.codec ?? '', a?.body ?? Buffer.alloc(0)), big);
        assert.deepEqual([b?.codec, b?.originalBytes, b?.storedBytes], ['identity', 1024, 1024]);
      });

      test('a body that compressing would not shrink is stored as it is', async () => {
        const { cache, admin } = await setup({ compressThresholdBytes: 0 });
        await cache.put(hex('a'), { body: '사과', model: 'm' });
        assert.equal((await cache.get(hex('a')))?.body, '사과');
        await cache.close();
        const [a] = await admin.show('a', 5);
        assert.deepEqual([a?.codec, a?.originalBytes, a?.storedBytes], ['identity', 6, 6]);
      });

      test('another process reads a put once its commit is due', async () => {
        const { cache, connect, clock, t0 } = await setup();
        const other = await connect();
        await cache.put(hex('a'), { body: 'from A', model: 'm' });
        await clock.advance(GROUP_COMMIT_MS);
        assert.deepEqual(await other.get(hex('a')), {
          body: 'from A',
          stale: false,
          createdAt: t0,
          expiresAt: t0 + DAY,
          model: 'm',
        });
      });

      test('two processes putting one key: the last writer wins, for both', async () => {
        const { cache, connect, clock } = await setup();
        const other = await connect();
        await cache.put(hex('a'), { body: 'first', model: 'm' });
        await clock.advance(GROUP_COMMIT_MS);
        await other.put(hex('a'), { body: 'second', model: 'm' });
        await clock.advance(GROUP_COMMIT_MS);
        assert.equal((await cache.get(hex('a')))?.body, 'second');
        assert.equal((await other.get(hex('a')))?.body, 'second');
      });
    });

    describe('admin', () => {
      test('an empty cache: zero stats, nothing listed or shown, nothing to prune or clear', async () => {
        const { admin } = await setup();
        const stats = await admin.stats();
        assert.deepEqual(stats, {
          entries: 0,
          live: 0,
          expired: 0,
          originalBytes: 0,
          storedBytes: 0,
          compressionRatio: 0,
          hits: 0,
          misses: 0,
          oldest: null,
          newest: null,
          perModel: {},
          perCodec: {},
          recentRuns: [],
        });
        assert.deepEqual(await admin.list(10), []);
        assert.deepEqual(await admin.show('a', 5), []);
        assert.equal(await admin.count({}), 0);
        assert.deepEqual(await admin.prune(), { rows: 0, originalBytes: 0, storedBytes: 0, runsTrimmed: 0 });
        assert.deepEqual(await admin.clear({}), { rows: 0, originalBytes: 0, storedBytes: 0 });
        assert.equal(typeof (await admin.footprint()), 'number');
      });

      test('stats count entries live and expired, bytes, models, codecs and the recent runs exactly', async () => {
        const { cache, clock, t0, admin } = await setup({ ttlMs: DAY });
        await cache.put(hex('a'), { body: big, model: 'gpt-4o', term: '사과' });
        await clock.advance(2 * DAY);
        await cache.put(hex('b'), { body: '{"word":"배"}', model: 'gpt-4o', term: '배' });
        await cache.put(hex('c'), { body: big, model: 'mini', term: '사과' });
        await cache.recordRun({ runId: 'run-1', startedAt: t0, hits: 3, misses: 1, model: 'gpt-4o' });
        await cache.recordRun({ runId: 'run-2', startedAt: t0 + 1000, hits: 2, misses: 0, model: 'mini' });
        await cache.recordRun({ runId: 'run-0', startedAt: t0, hits: 1, misses: 1, model: 'mini' });
        await cache.close();
        const bigStored = (await admin.show('a', 1))[0]?.storedBytes ?? 0;
        const original = 2 * bigBytes + 14;
        const stored = 2 * bigStored + 14;
        assert.deepEqual(await admin.stats(), {
          entries: 3,
          live: 2,
          expired: 1,
          originalBytes: original,
          storedBytes: stored,
          compressionRatio: original / stored,
          hits: 6,
          misses: 2,
          oldest: t0,
          newest: t0 + 2 * DAY,
          perModel: {
            'gpt-4o': {
              entries: 2,
              live: 1,
              expired: 1,
              originalBytes: bigBytes + 14,
              storedBytes: bigStored + 14,
            },
            mini: { entries: 1, live: 1, expired: 0, originalBytes: bigBytes, storedBytes: bigStored },
          },
          perCodec: { deflate: 2, identity: 1 },
          // Newest first; runs started in the same ms in run id order.
          recentRuns: [
            { runId: 'run-2', startedAt: t0 + 1000, hits: 2, misses: 0, model: 'mini' },
            { runId: 'run-0', startedAt: t0, hits: 1, misses: 1, model: 'mini' },
            { runId: 'run-1', startedAt: t0, hits: 3, misses: 1, model: 'gpt-4o' },
          ],
        });
        const two = await admin.stats(2);
        assert.deepEqual(
          [two.recentRuns.map((r) => r.runId), two.hits, two.misses],
          [['run-2', 'run-0'], 3, 1],
        );
      });

      test('recordRun stores absolute totals: a later call for the same run overwrites', async () => {
        const { cache, admin } = await setup();
        await cache.recordRun({ runId: 'r1', startedAt: 5, hits: 1, misses: 2, model: 'm' });
        await cache.recordRun({ runId: 'r1', startedAt: 5, hits: 10, misses: 3, model: 'm' });
        const stats = await admin.stats();
        assert.deepEqual(stats.recentRuns, [{ runId: 'r1', startedAt: 5, hits: 10, misses: 3, model: 'm' }]);
        assert.deepEqual([stats.hits, stats.misses], [10, 3]);
      });

      test('list: newest first, ties in key order, at most the limit, with every field', async () => {
        const { cache, clock, t0, admin } = await setup({ ttlMs: 0 });
        await cache.put(hex('b'), { body: 'b', model: 'm', term: 'term-b', stage: 'cards' });
        await cache.put(hex('a'), { body: 'a', model: 'm' });
        await clock.advance(1000);
        await cache.put(hex('c'), { body: 'cc', model: 'm2', term: 'term-c' });
        await cache.close();
        assert.deepEqual(await admin.list(10), [
          {
            key: hex('c'),
            model: 'm2',
            term: 'term-c',
            stage: null,
            codec: 'identity',
            originalBytes: 2,
            storedBytes: 2,
            createdAt: t0 + 1000,
            expiresAt: null,
          },
          {
            key: hex('a'),
            model: 'm',
            term: null,
            stage: null,
            codec: 'identity',
            originalBytes: 1,
            storedBytes: 1,
            createdAt: t0,
            expiresAt: null,
          },
          {
            key: hex('b'),
            model: 'm',
            term: 'term-b',
            stage: 'cards',
            codec: 'identity',
            originalBytes: 1,
            storedBytes: 1,
            createdAt: t0,
            expiresAt: null,
          },
        ]);
        assert.deepEqual(
          (await admin.list(2)).map((e) => e.key),
          [hex('c'), hex('a')],
        );
      });

      test('show: the entries whose key starts with the prefix, in key order, up to the limit', async () => {
        const { cache, admin } = await setup();
        const keys = ['abc2', 'abc1', 'abd0', 'abc3'].map((p) => `${p}${'0'.repeat(60)}`);
        for (const [i, k] of keys.entries()) await cache.put(k, { body: `body ${i}`, model: 'm' });
        await cache.close();
        const found = await admin.show('abc', 2);
        assert.deepEqual(
          found.map((e) => [e.key, e.body.toString()]),
          [
            [keys[1], 'body 1'],
            [keys[0], 'body 0'],
          ],
        );
        assert.equal((await admin.show('abc', 10)).length, 3);
        assert.deepEqual(
          (await admin.show(keys[2]!, 10)).map((e) => e.key),
          [keys[2]],
        );
        assert.deepEqual(await admin.show('abe', 10), []);
      });

      test('count and clear by model, by age, by both, and everything', async () => {
        const { cache, clock, admin } = await setup({ ttlMs: 0 });
        await cache.put(hex('1'), { body: 'old gpt', model: 'gpt-4o' });
        await cache.put(hex('2'), { body: 'old mini', model: 'mini' });
        await clock.advance(40 * DAY);
        await cache.put(hex('3'), { body: 'new gpt', model: 'gpt-4o' });
        await cache.put(hex('4'), { body: 'new mini!', model: 'mini' });
        await cache.close();
        const keys = async () => (await admin.list(10)).map((e) => e.key).sort();
        assert.equal(await admin.count({}), 4);
        assert.equal(await admin.count({ model: 'mini' }), 2);
        assert.equal(await admin.count({ olderThanMs: 30 * DAY }), 2);
        // Exactly as old as the bound is not older than it.
        assert.equal(await admin.count({ olderThanMs: 40 * DAY }), 0);
        assert.equal(await admin.count({ model: 'mini', olderThanMs: 30 * DAY }), 1);
        assert.equal(await admin.count({ model: 'nope' }), 0);

        assert.deepEqual(await admin.clear({ model: 'mini', olderThanMs: 30 * DAY }), {
          rows: 1,
          originalBytes: 8,
          storedBytes: 8,
        });
        assert.deepEqual(await keys(), [hex('1'), hex('3'), hex('4')]);
        assert.deepEqual(await admin.clear({ olderThanMs: 30 * DAY }), {
          rows: 1,
          originalBytes: 7,
          storedBytes: 7,
        });
        assert.deepEqual(await keys(), [hex('3'), hex('4')]);
        assert.deepEqual(await admin.clear({ model: 'gpt-4o' }), {
          rows: 1,
          originalBytes: 7,
          storedBytes: 7,
        });
        assert.deepEqual(await admin.clear({}), { rows: 1, originalBytes: 9, storedBytes: 9 });
        assert.deepEqual(await keys(), []);
      });

      test('prune deletes expired entries (stale ones too), keeps live and lasting ones, and trims runs to 100', async () => {
        const { connect, clock, t0, admin } = await setup();
        const shortLived = await connect({ ttlMs: 1000 });
        for (let i = 0; i < 30; i++)
          await shortLived.put(hex('e').slice(2) + String(i).padStart(2, '0'), { body: big, model: 'm' });
        for (let i = 0; i < 103; i++) {
          await shortLived.recordRun({
            runId: `run-${i}`,
            startedAt: t0 + i,
            hits: 1,
            misses: 0,
            model: 'm',
          });
        }
        await shortLived.close();
        await clock.advance(1000);
        const lasting = await connect({ ttlMs: 0 });
        await lasting.put(hex('f'), { body: 'x', model: 'm' });
        const live = await connect({ ttlMs: DAY });
        await live.put(hex('1'), { body: 'y', model: 'm' });
        await lasting.close();
        await live.close();
        assert.equal((await admin.stats()).expired, 30);

        const pruned = await admin.prune();
        assert.equal(pruned.rows, 30);
        assert.equal(pruned.originalBytes, 30 * bigBytes);
        assert.ok(pruned.storedBytes > 0 && pruned.storedBytes < pruned.originalBytes);
        assert.equal(pruned.runsTrimmed, 3);
        assert.deepEqual((await admin.list(100)).map((e) => e.key).sort(), [hex('1'), hex('f')]);
        const stats = await admin.stats(200);
        assert.equal(stats.recentRuns.length, 100);
        assert.equal(stats.recentRuns.at(-1)?.runId, 'run-3');
        assert.deepEqual(await admin.prune(), { rows: 0, originalBytes: 0, storedBytes: 0, runsTrimmed: 0 });
      });

      test('footprint: the cache takes room once it holds entries', async () => {
        const { cache, admin } = await setup();
        for (let i = 0; i < 10; i++) await cache.put(hex(String(i)), { body: big, model: 'm' });
        await cache.close();
        assert.ok((await admin.footprint()) > 0);
      });
    });
  });
}
