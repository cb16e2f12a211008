import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { redisLimiterAdmin } from '../src/limiter/redis-admin.ts';
import { redisLimiterStore } from '../src/limiter/redis-store.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { limiterStoreConformance } from './conformance/limiter-store.ts';
import { type RedisCluster, startRedisCluster } from './support/redis-cluster.ts';
import { redisSkip } from './support/redis-server.ts';

/**
 * The limiter on a real 3-node Redis Cluster: every script names keys of one slot (else the
 * cluster answers CROSSSLOT), admin reads SCAN every master, and different limiter keys spread
 * over the nodes.
 */
let cluster: RedisCluster | undefined;
const connections: RedisConnection[] = [];
before(async () => {
  if (!redisSkip) cluster = await startRedisCluster();
});
after(async () => {
  for (const c of connections) c.disconnect();
  await cluster?.stop();
});

async function connect(): Promise<RedisConnection> {
  if (cluster === undefined) throw new Error('no cluster');
  const conn = await connectRedis({ url: cluster.url, commandTimeoutMs: 10_000 });
  connections.push(conn);
  return conn;
}

const namespace = (): string => `t${randomUUID().slice(0, 8)}:`;

if (redisSkip) {
  test('LimiterStore conformance: Redis Cluster', { skip: redisSkip }, () => {});
} else {
  limiterStoreConformance('Redis Cluster (3 masters)', async (clock) => {
    const prefix = namespace();
    const opened: RedisConnection[] = [];
    const open = async (): Promise<RedisConnection> => {
      const conn = await connect();
      opened.push(conn);
      return conn;
    };
    return {
      store: async () => redisLimiterStore(await open(), { prefix, clock }),
      admin: async () => redisLimiterAdmin(await open(), { prefix, clock }),
      close: async () => {
        for (const c of opened) c.disconnect();
      },
    };
  });
}

describe('Redis Cluster', { skip: redisSkip }, () => {
  test('different limiter keys land on every node, and status and reset find them all', async () => {
    const clock = new FakeClock();
    const prefix = namespace();
    const conn = await connect();
    const store = redisLimiterStore(conn, { prefix, clock });
    const keys = Array.from(
      { length: 30 },
      (_, i) => `https://api.test/v1|model-${String(i).padStart(2, '0')}|k`,
    );
    for (const k of keys) {
      await store.markObserved(k);
      await store.book(k, {
        shards: [0, 1],
        buckets: [{ kind: 'rpm', costMs: 100, tauMs: 800 }],
        maxWaitMs: 0,
        refunds: [],
      });
    }
    const perNode = await Promise.all(
      ('nodes' in conn ? conn.nodes('master') : []).map(async (node) => {
        const [, found] = await node.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
        return found.length;
      }),
    );
    assert.equal(perNode.length, 3);
    assert.ok(
      perNode.every((n) => n > 0),
      `keys per node: ${perNode.join(', ')}`,
    );
    const admin = redisLimiterAdmin(conn, { prefix, clock });
    assert.deepEqual(
      (await admin.read()).keys.map((k) => [k.row.key, k.shards.length]),
      keys.map((k) => [k, 1]),
    );
    assert.deepEqual(await admin.reset(undefined), keys);
  });
});
