import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { openRedisState } from '../src/store/redis/state.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';
import { eventually } from './support/wait.ts';

describe('the shared state on Redis: noticing what happens to the store', { skip: redisSkip }, () => {
  let server: RedisServer;
  const home = mkdtempSync(join(tmpdir(), 'fc-redis-state-'));
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await server?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  test('a store emptied under a connection that stays up is found lost at the next epoch check (exit 5)', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const url = `${server.url}?prefix=flush-test:`;
    const state = await openRedisState({ url, home, clock, create: true, commandTimeoutMs: 2000 });
    try {
      assert.equal(state.health.lost, undefined);
      const { connectRedis } = await import('../src/store/redis/connection.ts');
      const admin = await connectRedis({ url, commandTimeoutMs: 2000 });
      await admin.flushall();
      admin.disconnect();
      await clock.advance(10_000);
      const health = state.health;
      await eventually(() => health.lost !== undefined);
      assert.equal(health.lost === undefined ? undefined : (health.lost as { exitCode: number }).exitCode, 5);
      await assert.rejects(
        state.batches.catalog.get('x'),
        (e) => isFlashcardsError(e) && e.kind === 'store_lost',
      );
    } finally {
      await state.close();
    }
  });

  test('a store that does not answer while opening is exit 3 naming it, not an unexpected error', async () => {
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    server.pause();
    try {
      await assert.rejects(
        openRedisState({ url: server.url, home, clock, create: true, commandTimeoutMs: 300 }),
        (e) => isFlashcardsError(e) && e.exitCode === 3 && /redis:\/\/127\.0\.0\.1:\d+\/0/.test(e.message),
      );
    } finally {
      server.resume();
    }
  });
});
