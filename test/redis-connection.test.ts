import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isFlashcardsError } from '../src/core/errors.ts';
import { connectRedis, parseRedisUrl, redactRedisUrl } from '../src/store/redis/connection.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

describe('store URLs', () => {
  test('redis, rediss, cluster and unix forms; a password is never shown', () => {
    assert.deepEqual(parseRedisUrl('redis://:s3cret@cache.internal:6380/2'), {
      cluster: false,
      tls: false,
      host: 'cache.internal',
      port: 6380,
      db: 2,
      prefix: 'fc:',
      password: 's3cret',
    });
    assert.equal(parseRedisUrl('redis://h/0?prefix=team-a:').prefix, 'team-a:');
    assert.throws(() => parseRedisUrl('redis://h/0?prefix={x}'), /prefix must be non-empty/);
    assert.equal(parseRedisUrl('rediss://h/0').tls, true);
    assert.equal(parseRedisUrl('redis-cluster://h:7000').cluster, true);
    assert.deepEqual(parseRedisUrl('unix:///run/redis.sock?db=1'), {
      cluster: false,
      tls: false,
      path: '/run/redis.sock',
      db: 1,
      prefix: 'fc:',
    });
    assert.equal(redactRedisUrl('redis://user:s3cret@h:6379/0'), 'redis://user:***@h:6379/0');
    assert.throws(() => parseRedisUrl('http://h'), /unknown scheme "http:"/);
  });
});

describe('connecting', { skip: redisSkip }, () => {
  let server: RedisServer;
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
  });

  test('a running server answers', async () => {
    const redis = await connectRedis({ url: server.url, commandTimeoutMs: 2000 });
    assert.equal(await redis.ping(), 'PONG');
    redis.disconnect();
  });

  test('nothing at the address: one error naming the URL (password hidden), exit 3', async () => {
    await assert.rejects(
      connectRedis({ url: 'redis://:pw@127.0.0.1:1/0', commandTimeoutMs: 1000 }),
      (e: unknown) =>
        isFlashcardsError(e) &&
        e.exitCode === 3 &&
        /^cannot reach the store at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/.test(e.message) &&
        !e.message.includes('pw@'),
    );
  });

  test('a frozen server makes commands fail after the timeout instead of hanging', async () => {
    const redis = await connectRedis({ url: server.url, commandTimeoutMs: 300 });
    server.pause();
    try {
      await assert.rejects(redis.get('x'), /timed out/i);
    } finally {
      server.resume();
      redis.disconnect();
    }
  });
});
