import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Cluster } from 'ioredis';
import { openRedisBatchStores } from '../src/batch/redis-stores.ts';
import type { BatchStores } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { batchCatalogConformance } from './conformance/batch-catalog.ts';
import { collect, idxs, meta, outcome, STAGES, T0 } from './conformance/batch-fixtures.ts';
import { batchResultsConformance } from './conformance/batch-results.ts';
import { workQueueConformance } from './conformance/work-queue.ts';
import { type RedisCluster, startRedisCluster } from './support/redis-cluster.ts';
import { redisSkip } from './support/redis-server.ts';

/**
 * The batch stores on a real 3-node Redis Cluster: every script touches the keys of one slot (a
 * batch's hash tag), or the cluster would refuse it with CROSSSLOT; the listing's set lives in
 * a slot of its own. The same conformance suites as on one server.
 */
describe('batch stores on a Redis Cluster', { skip: redisSkip }, () => {
  let cluster: RedisCluster;
  const connections: RedisConnection[] = [];
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    for (const c of connections.splice(0)) c.disconnect();
    await cluster?.stop();
  });

  async function connection(): Promise<RedisConnection> {
    const conn = await connectRedis({ url: cluster.url, commandTimeoutMs: 10_000 });
    connections.push(conn);
    return conn;
  }

  async function openCluster(clock: FakeClock) {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const opened: { conn: RedisConnection; stores: BatchStores }[] = [];
    return {
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

  batchCatalogConformance('Redis Cluster', openCluster);
  workQueueConformance('Redis Cluster', openCluster);
  batchResultsConformance('Redis Cluster', openCluster);

  test('batches spread over the nodes, each whole on one node, and a run works across them', async () => {
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const clock = new FakeClock(T0);
    const conn = await connection();
    const a = openRedisBatchStores(conn, { prefix, clock });
    const b = openRedisBatchStores(await connection(), { prefix, clock });
    const ids = Array.from({ length: 12 }, (_, i) => `batch${i}`);
    for (const id of ids) {
      assert.equal(await a.catalog.create(meta(id), 'loader'), true);
      await a.catalog.insertItems(
        id,
        [0, 1, 2].map((idx) => ({ idx, term: `w${idx}`, line: idx + 1, context: {} })),
        STAGES,
      );
      await a.catalog.finishLoading(id, 3);
      for (const item of await b.queue.claim(id, 'B', 60_000, 3)) {
        await b.results.completeJob(outcome(id, item.idx, 'analyze', { token: item.token }), { id }, false);
        await b.results.completeJob(outcome(id, item.idx, 'cards', { token: item.token }), { id }, true);
      }
    }
    const listed = await a.catalog.overview();
    assert.deepEqual(listed.map((o) => o.batch.id).sort(), [...ids].sort());
    assert.ok(listed.every((o) => o.done === 3 && o.requests === 6));
    assert.deepEqual(idxs(await collect(a.results.finishedItems('batch7'))), [0, 1, 2]);

    // Where the keys are: each batch's on one node; together on more than one.
    const nodeOf = new Map<string, Set<number>>();
    const masters = (conn as Cluster).nodes('master');
    for (const [n, node] of masters.entries()) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}{b:*`, 'COUNT', 1000);
        for (const key of keys) {
          const id = key.slice(prefix.length + 3, key.indexOf('}'));
          nodeOf.set(id, (nodeOf.get(id) ?? new Set()).add(n));
        }
        cursor = next;
      } while (cursor !== '0');
    }
    assert.deepEqual([...nodeOf.keys()].sort(), [...ids].sort());
    assert.ok(
      [...nodeOf.values()].every((nodes) => nodes.size === 1),
      'each batch on one node',
    );
    assert.ok(new Set([...nodeOf.values()].map((s) => [...s][0])).size > 1, 'batches on several nodes');
  });
});
