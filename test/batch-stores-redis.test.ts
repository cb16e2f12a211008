import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { openRedisBatchStores } from '../src/batch/redis-stores.ts';
import { timingSummary } from '../src/batch/rules.ts';
import type { BatchStores } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { batchCatalogConformance } from './conformance/batch-catalog.ts';
import { collect, idxs, meta, outcome, STAGES, T0 } from './conformance/batch-fixtures.ts';
import { batchResultsConformance } from './conformance/batch-results.ts';
import { workQueueConformance } from './conformance/work-queue.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

/** CRC16-XMODEM of the key's hash tag (or the whole key): the slot Redis Cluster puts it in. */
function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tagged = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tagged)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('batch stores on Redis', { skip: redisSkip }, () => {
  let server: RedisServer;
  const connections: RedisConnection[] = [];
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    for (const c of connections.splice(0)) c.disconnect();
    await server?.stop();
  });

  async function connection(): Promise<RedisConnection> {
    const conn = await connectRedis({ url: server.url, commandTimeoutMs: 10_000 });
    connections.push(conn);
    return conn;
  }

  /** A fresh namespace per test on the file's server; every connect() is a new connection, like another process. */
  async function openRedis(clock: FakeClock, prefix = `t${randomBytes(4).toString('hex')}:`) {
    const opened: { conn: RedisConnection; stores: BatchStores }[] = [];
    return {
      prefix,
      async connect() {
        const conn = await connection();
        const stores = openRedisBatchStores(conn, { prefix, clock });
        opened.push({ conn, stores });
        return stores;
      },
      async close() {
        for (const { conn, stores } of opened) {
          await stores.results.flush();
          conn.disconnect();
        }
      },
    };
  }

  batchCatalogConformance('Redis', openRedis);
  workQueueConformance('Redis', openRedis);
  batchResultsConformance('Redis', openRedis);

  /** A loaded batch of `n` items in a fresh namespace, the stores of two processes, and a plain connection. */
  async function loaded(n: number, id = 'b1', timing: 'fake clock' | 'server TIME' = 'fake clock') {
    const clock = timing === 'fake clock' ? new FakeClock(T0) : undefined;
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const open = async () => openRedisBatchStores(await connection(), { prefix, clock });
    const a = await open();
    await a.catalog.create(meta(id), 'loader');
    await a.catalog.insertItems(
      id,
      Array.from({ length: n }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
      STAGES,
    );
    await a.catalog.finishLoading(id, n);
    return { prefix, clock, a, b: await open(), open, redis: await connection() };
  }

  async function keysUnder(redis: RedisConnection, prefix: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
    return found.sort();
  }

  describe('Redis only', () => {
    test('the same outcome twice (a reply that timed out, then the outbox) is counted once', async () => {
      const { a } = await loaded(2);
      const [item] = await a.queue.claim('b1', 'A', 60_000, 1);
      const first = outcome('b1', item!.idx, 'analyze', { token: item!.token, requests: 2, promptTokens: 7 });
      await a.results.completeJob(first, { x: 1 }, false);
      await a.results.completeJob(first, { x: 1 }, false);
      const totals = await a.results.totals('b1');
      assert.equal(totals.requests, 2);
      assert.equal(totals.promptTokens, 7);
      assert.equal((await a.results.counts('b1')).pending, 2);
    });

    test('the slot arithmetic is Redis Cluster’s', () => {
      assert.equal(keySlot('123456789'), 0x31c3 % 16384);
      assert.equal(keySlot('foo'), 12182);
      assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
    });

    test('every key of a batch shares one slot, whatever the batch id', async () => {
      for (const id of ['3f2a9c', 'odd {id} with } braces']) {
        const { prefix, a, redis } = await loaded(3, id);
        const [item] = await a.queue.claim(id, 'A', 60_000, 2);
        await a.queue.joinRun(id, 'A', { exclusive: false, aliveMs: 60_000 });
        await a.results.completeJob(outcome(id, 0, 'analyze', { token: item!.token }), { x: 1 }, false);
        await a.results.failJob(outcome(id, 1, 'analyze'), 'server', 'HTTP 500');
        const keys = (await keysUnder(redis, prefix)).filter((k) => k !== `${prefix}{batches}:ids`);
        assert.ok(keys.length >= 10, keys.join(' '));
        assert.deepEqual(new Set(keys.map(keySlot)).size, 1, `one slot for ${keys.join(' ')}`);
        assert.ok(keys.every((k) => k.startsWith(`${prefix}{b:`)));
      }
    });

    test('deleting a batch leaves nothing of it behind', async () => {
      const { prefix, a, redis } = await loaded(3);
      await a.queue.claim('b1', 'A', 60_000, 3);
      await a.queue.joinRun('b1', 'A', { exclusive: false, aliveMs: 60_000 });
      await a.results.completeJob(outcome('b1', 0, 'analyze'), {}, false);
      await a.catalog.delete('b1');
      assert.deepEqual(await keysUnder(redis, prefix), []);
      // Nor do a late run's calls bring keys back for a batch that is gone.
      await a.queue.heartbeat('b1', 'A', 60_000);
      await a.results.completeJob(outcome('b1', 1, 'analyze'), {}, true);
      await a.queue.releaseLeases('b1', 'A');
      assert.deepEqual(await a.queue.claim('b1', 'A', 60_000, 3), []);
      await a.catalog.setStatus('b1', 'done');
      await a.catalog.patchSettings('b1', { deck: 'x' });
      await assert.rejects(a.queue.joinRun('b1', 'A', { exclusive: false, aliveMs: 1 }), /no batch/);
      assert.deepEqual(await keysUnder(redis, prefix), []);
    });

    test('a script the server lost (SCRIPT FLUSH, a restart) is sent again', async () => {
      const { a, b, redis } = await loaded(3);
      assert.deepEqual(idxs(await a.queue.claim('b1', 'A', 60_000, 1)), [0]);
      await redis.script('FLUSH');
      assert.deepEqual(idxs(await a.queue.claim('b1', 'A', 60_000, 1)), [1]);
      await redis.script('FLUSH');
      await a.results.completeJob(outcome('b1', 0, 'analyze'), { ok: true }, false);
      assert.deepEqual(await b.results.results('b1', 0), { analyze: { ok: true } });
    });

    test('without a clock, leases are timed by the server’s TIME', async () => {
      const { a, redis, prefix } = await loaded(1, 'b1', 'server TIME');
      const serverMs = async (): Promise<number> => {
        const [s, us] = await redis.time();
        return Number(s) * 1000 + Math.floor(Number(us) / 1000);
      };
      const before = await serverMs();
      await a.queue.claim('b1', 'A', 60_000, 1);
      const afterClaim = await serverMs();
      const leaseUntil = Number(await redis.zscore(`${prefix}{b:b1}:leased`, '0'));
      assert.ok(
        leaseUntil >= before + 60_000 && leaseUntil <= afterClaim + 60_000,
        `${leaseUntil} within [${before}, ${afterClaim}] + 60 s`,
      );
      const meta = await redis.hgetall(`${prefix}{b:b1}:meta`);
      assert.ok(Number(meta['created_at']) <= before && Number(meta['updated_at']) <= before);
    });

    test('many processes claiming at once get disjoint items, all of them once', async () => {
      const n = 300;
      const { a, b, open } = await loaded(n);
      const others = [a, b, await open(), await open(), await open()];
      const claimed: number[][] = others.map(() => []);
      await Promise.all(
        others.map(async (stores, p) => {
          for (;;) {
            const got = await stores.queue.claim('b1', `P${p}`, 60_000, 7);
            if (got.length === 0) return;
            claimed[p]!.push(...idxs(got));
          }
        }),
      );
      const all = claimed.flat().sort((x, y) => x - y);
      assert.deepEqual(
        all,
        Array.from({ length: n }, (_, i) => i),
      );
      assert.equal((await a.results.counts('b1')).leased, n);
    });

    test('an outcome not yet answered is seen by the next read of the same stores', async () => {
      const { a } = await loaded(2);
      await a.queue.claim('b1', 'A', 60_000, 2);
      void a.results.completeJob(outcome('b1', 0, 'analyze'), { v: 0 }, false);
      void a.results.completeJob(outcome('b1', 0, 'cards'), { v: 0 }, true);
      void a.results.failJob(outcome('b1', 1, 'analyze'), 'server', 'HTTP 500');
      assert.deepEqual(await a.results.counts('b1'), { total: 2, done: 1, failed: 1, pending: 0, leased: 0 });
      assert.equal((await a.catalog.overview())[0]?.done, 1);
    });

    test('loading an item twice is refused and changes nothing', async () => {
      const { a } = await loaded(2);
      await assert.rejects(
        a.catalog.insertItems(
          'b1',
          [
            { idx: 2, term: 'new', line: 3, context: {} },
            { idx: 1, term: 'again', line: 2, context: {} },
          ].sort((x, y) => x.idx - y.idx),
          STAGES,
        ),
        /already loaded/,
      );
      assert.deepEqual(await a.results.counts('b1'), { total: 2, done: 0, failed: 0, pending: 2, leased: 0 });
      assert.deepEqual(
        (await a.catalog.stageStats('b1')).map((s) => s.total),
        [2, 2],
      );
      await assert.rejects(
        a.catalog.insertItems('nope', [{ idx: 0, term: 'x', line: 1, context: {} }], STAGES),
        /no batch/,
      );
    });

    test('request-time percentiles by rank agree with rules.ts timingSummary', async () => {
      for (const n of [1, 2, 3, 7, 10, 99, 101, 250]) {
        const { a } = await loaded(n);
        await a.queue.claim('b1', 'A', 60_000, n);
        const times = Array.from({ length: n }, (_, i) => ((i * 7919) % 1009) + (i % 3));
        for (let i = 0; i < n; i++) {
          void a.results.completeJob(outcome('b1', i, 'analyze', { requestMs: times[i]! }), {}, false);
        }
        assert.deepEqual(
          await a.catalog.requestTimes('b1'),
          timingSummary([...times].sort((x, y) => x - y)),
          `n = ${n}`,
        );
      }
    });

    test('unfinished items of a large batch merge free, leased and failed ones into input order, page after page', async () => {
      const n = 700;
      const { a, b } = await loaded(n);
      const claimed = await a.queue.claim('b1', 'A', 60_000, 600);
      const writes: Promise<void>[] = [];
      for (const item of claimed) {
        const o = (stage: string) => outcome('b1', item.idx, stage, { token: item.token });
        if (item.idx % 4 === 0) {
          writes.push(a.results.completeJob(o('analyze'), { i: item.idx }, false));
          writes.push(a.results.completeJob(o('cards'), {}, true));
        } else if (item.idx % 4 === 1) writes.push(a.results.failJob(o('analyze'), 'server', 'HTTP 500'));
        else if (item.idx % 4 === 2) writes.push(a.queue.releaseItem('b1', item.idx, item.token));
        else writes.push(a.results.completeJob(o('analyze'), { i: item.idx }, false));
      }
      await Promise.all(writes);
      const all = Array.from({ length: n }, (_, i) => i);
      const pending = (i: number): boolean => i >= 600 || i % 4 === 2 || i % 4 === 3;
      const rows = await collect(b.results.unfinishedItems('b1', { failed: false }));
      assert.deepEqual(idxs(rows), all.filter(pending));
      assert.deepEqual(rows.find((r) => r.idx === 3)?.results, { analyze: { i: 3 } });
      assert.deepEqual(
        idxs(await collect(b.results.unfinishedItems('b1', { failed: true }))),
        all.filter((i) => pending(i) || i % 4 === 1),
      );
    });

    test('finished items of a large batch come back in pages, in order, from any process', async () => {
      const n = 2000;
      const { a, b } = await loaded(n);
      await a.queue.claim('b1', 'A', 60_000, n);
      const writes: Promise<void>[] = [];
      for (let i = n - 1; i >= 0; i--) {
        if (i % 5 === 1) continue;
        writes.push(a.results.completeJob(outcome('b1', i, 'analyze'), { i }, false));
        writes.push(a.results.completeJob(outcome('b1', i, 'cards'), { term: `w${i}` }, true));
      }
      await Promise.all(writes);
      const rows = await collect(b.results.finishedItems('b1', 3));
      const expected = Array.from({ length: n }, (_, i) => i).filter((i) => i >= 3 && i % 5 !== 1);
      assert.deepEqual(idxs(rows), expected);
      assert.deepEqual(rows[0], {
        idx: 3,
        item: { term: 'w3', line: 4, context: {} },
        results: { analyze: { i: 3 }, cards: { term: 'w3' } },
      });
    });
  });
});
