import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { cacheKeyNames, scanTargets } from '../src/cache/redis-scripts.ts';
import { redisCacheAdmin, redisResponseCache } from '../src/cache/redis-store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { cacheStoreConformance } from './conformance/cache-store.ts';
import { type RedisCluster, startRedisCluster } from './support/redis-cluster.ts';
import { redisSkip } from './support/redis-server.ts';

/**
 * The response cache on a real 3-node Redis Cluster: each script touches one entry's key, or the
 * run history's two keys that share a tag (a cluster refuses anything else with CROSSSLOT), and
 * the admin walks every master with SCAN. The same conformance suite as on one server.
 */
describe('the response cache on a Redis Cluster', { skip: redisSkip }, () => {
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
  const prefix = (): string => `t${randomBytes(4).toString('hex')}:`;

  cacheStoreConformance('Redis Cluster', async (clock) => {
    const p = prefix();
    return {
      connect: async (settings, random) =>
        redisResponseCache(await connection(), { settings, random, prefix: p, clock }),
      admin: async () => redisCacheAdmin(await connection(), { prefix: p, clock }),
      async close() {},
    };
  });

  test('entries spread over every master, and the admin finds them all', async () => {
    const conn = await connection();
    const p = prefix();
    const clock = new FakeClock();
    const cache = redisResponseCache(conn, {
      settings: { ttlMs: 0, jitter: 0, compressThresholdBytes: 1024 },
      random: seededRandom(1),
      prefix: p,
      clock,
    });
    const keys = Array.from({ length: 60 }, (_, i) => i.toString(16).padStart(64, '0'));
    for (const key of keys) await cache.put(key, { body: key, model: 'm' });
    const names = cacheKeyNames(p);
    const masters = scanTargets(conn);
    assert.equal(masters.length, 3);
    const perMaster = await Promise.all(
      masters.map(async (node) => (await node.scan('0', 'MATCH', names.entries(), 'COUNT', 1000))[1].length),
    );
    assert.ok(
      perMaster.every((n) => n > 0),
      `entries per master: ${perMaster.join(', ')}`,
    );
    const admin = redisCacheAdmin(conn, { prefix: p, clock });
    assert.equal((await admin.stats()).entries, 60);
    assert.deepEqual((await admin.list(100)).map((e) => e.key).sort(), keys);
    assert.equal((await admin.clear({})).rows, 60);
    assert.equal((await admin.stats()).entries, 0);
  });
});
