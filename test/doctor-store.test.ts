import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { checkStore, evictionCheck, persistenceCheck } from '../src/commands/doctor-store.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

describe('doctor: the shared store', () => {
  test('eviction: allkeys-* fails (state could vanish); noeviction and volatile-* pass', () => {
    assert.equal(evictionCheck('allkeys-lru', 2 ** 30).status, 'fail');
    assert.match(evictionCheck('allkeys-lru', 2 ** 30).detail, /1024 MiB/);
    assert.equal(evictionCheck('noeviction', 0).status, 'pass');
    assert.equal(evictionCheck('volatile-lru', 2 ** 20).status, 'pass');
  });

  test('persistence: AOF or snapshot rules pass; neither warns with the exit-5 consequence', () => {
    assert.equal(persistenceCheck({ aof_enabled: '1' }, '').status, 'pass');
    assert.equal(persistenceCheck({ aof_enabled: '0' }, '3600 1').status, 'pass');
    const none = persistenceCheck({ aof_enabled: '0' }, '');
    assert.equal(none.status, 'warn');
    assert.match(none.fix ?? '', /appendonly yes/);
    assert.match(persistenceCheck({ aof_enabled: '0' }, undefined).detail, /not readable/);
  });

  test('nothing listening: one failed check naming the URL, password hidden', async () => {
    const checks = await checkStore('redis://:hunter2@127.0.0.1:1/0', undefined);
    assert.equal(checks.length, 1);
    assert.equal(checks[0]?.status, 'fail');
    assert.match(checks[0]?.detail ?? '', /redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/);
    assert.doesNotMatch(JSON.stringify(checks), /hunter2/);
  });

  describe('against redis-server', { skip: redisSkip }, () => {
    let server: RedisServer;
    before(async () => {
      server = await startRedisServer(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    });
    after(async () => server?.stop());

    test('version, eviction policy and persistence as the server reports them', async () => {
      const checks = await checkStore(server.url, undefined);
      assert.deepEqual(
        checks.map((c) => [c.name, c.status]),
        [
          ['store', 'pass'],
          ['store eviction', 'fail'],
          ['store persistence', 'warn'],
        ],
      );
      assert.match(checks[0]?.detail ?? '', /^Redis \d+\.\d+\.\d+ at redis:\/\/127\.0\.0\.1:\d+\/0/);
      assert.match(checks[1]?.detail ?? '', /allkeys-lru \(maxmemory 64 MiB\)/);
    });
  });
});
