import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheKeyNames, withCacheScripts } from '../src/cache/redis-scripts.ts';
import { redisCacheAdmin, redisResponseCache } from '../src/cache/redis-store.ts';
import { SqliteResponseCache } from '../src/cache/sqlite-store.ts';
import type { CacheSettings, ResponseCache } from '../src/cache/store.ts';
import { cacheClear, cacheList, cachePrune, cacheShow, cacheStats } from '../src/commands/cache.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { seededRandom } from '../src/core/random.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { cacheStoreConformance } from './conformance/cache-store.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

const DAY = 86_400_000;
const settings: CacheSettings = { ttlMs: DAY, jitter: 0, compressThresholdBytes: 1024 };

/** A key namespace of its own per test, so tests share the server without FLUSHALL. */
const namespace = (): string => `t${randomBytes(6).toString('hex')}:`;

/** CRC16/XMODEM mod 16384 of the hash tag (or the whole key): the slot Redis Cluster gives a key. */
function slotOf(key: string): number {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  const tagged = open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(tagged, 'utf8')) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('the response cache on Redis', { skip: redisSkip }, () => {
  let server: RedisServer;
  const connections: RedisConnection[] = [];
  const connect = async (commandTimeoutMs = 5000): Promise<RedisConnection> => {
    const conn = await connectRedis({ url: server.url, commandTimeoutMs });
    connections.push(conn);
    return conn;
  };
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    for (const c of connections) c.disconnect();
    await server?.stop();
  });

  /** Every connect() is its own client (another host); all share the test's namespace. */
  cacheStoreConformance('Redis', async (clock) => {
    const ns = namespace();
    const opened: RedisConnection[] = [];
    const fresh = async (): Promise<RedisConnection> => {
      const conn = await connectRedis({ url: server.url, commandTimeoutMs: 5000 });
      opened.push(conn);
      return conn;
    };
    return {
      connect: async (s, random) =>
        redisResponseCache(await fresh(), { settings: s, random, prefix: ns, clock }),
      admin: async () => redisCacheAdmin(await fresh(), { prefix: ns, clock }),
      async close() {
        for (const c of opened) c.disconnect();
      },
    };
  });

  test('an entry is a hash with cache.db’s columns, dated by Redis TIME, kept 7 days past its expiry', async () => {
    const conn = await connect();
    const ns = namespace();
    const cache = redisResponseCache(conn, { settings, random: seededRandom(1), prefix: ns });
    const t1 = await conn.time();
    await cache.put('k1', { body: '{"a":1}', model: 'm', term: '사과', stage: 'cards' });
    const t2 = await conn.time();
    const name = cacheKeyNames(ns).entry('k1');
    const stored = await conn.hgetall(name);
    assert.deepEqual(Object.keys(stored).sort(), [
      'body',
      'codec',
      'created_at',
      'expires_at',
      'model',
      'original_bytes',
      'stage',
      'stored_bytes',
      'term',
    ]);
    const created = Number(stored['created_at']);
    const ms = (t: unknown[]): number => Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000);
    assert.ok(created >= ms(t1) && created <= ms(t2), `created_at ${created}`);
    assert.equal(Number(stored['expires_at']), created + DAY);
    assert.equal(await conn.call('PEXPIRETIME', name), created + DAY + 7 * DAY);

    const forever = redisResponseCache(conn, {
      settings: { ...settings, ttlMs: 0 },
      random: seededRandom(1),
      prefix: ns,
    });
    await forever.put('k2', { body: 'x', model: 'm' });
    const lasting = cacheKeyNames(ns).entry('k2');
    assert.equal(await conn.hexists(lasting, 'expires_at'), 0);
    assert.equal(await conn.call('PEXPIRETIME', lasting), -1);
  });

  test('the stale grace is an option: the key goes that long after the fresh expiry', async () => {
    const conn = await connect();
    const ns = namespace();
    const cache = redisResponseCache(conn, {
      settings,
      random: seededRandom(1),
      prefix: ns,
      staleGraceMs: 0,
    });
    await cache.put('k', { body: 'x', model: 'm' });
    const name = cacheKeyNames(ns).entry('k');
    assert.equal(await conn.call('PEXPIRETIME', name), Number(await conn.hget(name, 'expires_at')));
  });

  test('after SCRIPT FLUSH (or a restart) the scripts load again by themselves', async () => {
    const conn = await connect();
    const ns = namespace();
    const cache = redisResponseCache(conn, { settings, random: seededRandom(1), prefix: ns });
    await cache.put('k', { body: 'before', model: 'm' });
    await conn.script('FLUSH');
    assert.equal((await cache.get('k'))?.body, 'before');
    await conn.script('FLUSH');
    await cache.put('k', { body: 'after', model: 'm' });
    assert.equal((await cache.get('k'))?.body, 'after');
    await conn.script('FLUSH');
    const admin = redisCacheAdmin(conn, { prefix: ns });
    assert.equal((await admin.clear({})).rows, 1);
  });

  test('delete-if judges the entry as it is when it runs (prune and clear pick by a SCAN taken earlier)', async () => {
    const conn = await connect();
    const ns = namespace();
    const clock = new FakeClock();
    const t0 = clock.now();
    const names = cacheKeyNames(ns);
    const cache = redisResponseCache(conn, { settings, random: seededRandom(1), prefix: ns, clock });
    await cache.put('old', { body: 'abc', model: 'mini' });
    await clock.advance(10 * DAY);
    await cache.put('new', { body: 'abcd', model: 'mini' });
    const scripts = withCacheScripts(conn);
    const at = (ms: number): string => String(t0 + ms);
    const deleteIf = (key: string, now: string, ...args: [string, string, string, string]) =>
      scripts.fcCacheDeleteIf(names.entry(key), now, ...args);
    // Expired only: 'new' expires at 11 days.
    assert.equal(await deleteIf('new', at(11 * DAY - 1), '1', '', '', ''), null);
    // Another model, or not old enough: kept.
    assert.equal(await deleteIf('old', at(10 * DAY), '', '1', 'gpt-4o', ''), null);
    assert.equal(await deleteIf('old', at(10 * DAY), '', '', '', String(10 * DAY)), null);
    assert.equal(await deleteIf('missing', at(0), '', '', '', ''), null);
    assert.deepEqual(await deleteIf('old', at(10 * DAY + 1), '', '1', 'mini', String(10 * DAY)), [3, 3]);
    assert.deepEqual(await deleteIf('new', at(11 * DAY), '1', '', '', ''), [4, 4]);
    assert.deepEqual([await conn.exists(names.entry('old')), await conn.exists(names.entry('new'))], [0, 0]);
  });

  test('keys: each entry is its own hash tag; the two keys of the run history share one slot', () => {
    const keys = cacheKeyNames('fc:');
    const entry = keys.entry('3fa9'.repeat(16));
    assert.equal(entry, `fc:{cache:${'3fa9'.repeat(16)}}`);
    assert.equal(slotOf(entry), slotOf(`{cache:${'3fa9'.repeat(16)}}`));
    assert.notEqual(slotOf(keys.entry('a'.repeat(64))), slotOf(keys.entry('b'.repeat(64))));
    assert.equal(slotOf(keys.runs), slotOf(keys.runOrder));
    assert.equal(keys.keyOf(entry), '3fa9'.repeat(16));
    assert.throws(() => cacheKeyNames('fc:{x}:'), { kind: 'usage', message: /must not contain \{ or \}/ });
  });

  test('an entry in an unknown codec or with a corrupt body is a miss', async () => {
    const conn = await connect();
    const ns = namespace();
    const names = cacheKeyNames(ns);
    const cache = redisResponseCache(conn, { settings, random: seededRandom(1), prefix: ns });
    const row = {
      model: 'm',
      original_bytes: '1',
      stored_bytes: '1',
      created_at: String(Date.UTC(2026, 0, 1)),
    };
    await conn.hset(names.entry('lz4'), { ...row, codec: 'lz4', body: Buffer.from([0]) });
    await conn.hset(names.entry('bad'), { ...row, codec: 'deflate', body: Buffer.from([1, 2, 3, 4, 5]) });
    assert.equal(await cache.get('lz4'), undefined);
    assert.equal(await cache.get('bad'), undefined);
  });

  test('a frozen server: a read fails with an error naming the store, exit 3, instead of hanging', async () => {
    const conn = await connect(300);
    const cache = redisResponseCache(conn, {
      settings,
      random: seededRandom(1),
      prefix: namespace(),
      location: 'redis://127.0.0.1/0',
    });
    server.pause();
    try {
      await assert.rejects(
        cache.get('k'),
        (e: unknown) =>
          isFlashcardsError(e) &&
          e.exitCode === 3 &&
          e.kind === 'store_unavailable' &&
          /^the store at redis:\/\/127\.0\.0\.1\/0 does not answer \(reading an entry: .*timed out/i.test(
            e.message,
          ),
      );
    } finally {
      server.resume();
    }
  });

  test('the cache commands print the same on Redis as on cache.db', async () => {
    // Filled the same way on two clocks that start together, so both caches end up alike.
    const clock = new FakeClock();
    const redisClock = new FakeClock();
    const dir = mkdtempSync(join(tmpdir(), 'fc-cache-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const conn = await connect();
    const ns = namespace();
    const fill = async (cache: ResponseCache, on: FakeClock): Promise<void> => {
      await cache.put(`abc1${'0'.repeat(60)}`, {
        body: '{"word":"사과"}'.repeat(100),
        model: 'gpt-4o',
        term: '사과',
      });
      await on.advance(2 * DAY);
      await cache.put(`abc2${'0'.repeat(60)}`, { body: '{"word":"배"}', model: 'mini', stage: 'cards' });
      await cache.recordRun({ runId: 'run-1', startedAt: on.now(), hits: 3, misses: 1, model: 'gpt-4o' });
      await cache.close();
    };
    await fill(
      SqliteResponseCache.open(join(dir, 'cache.db'), settings, { clock, random: seededRandom(1) }),
      clock,
    );
    await fill(
      redisResponseCache(conn, { settings, random: seededRandom(1), prefix: ns, clock: redisClock }),
      redisClock,
    );
    const backends = {
      sqlite: undefined,
      redis: redisCacheAdmin(conn, { prefix: ns, clock, location: 'redis' }),
    };
    const run = async (
      command: (ctx: CommandContext, admin: (typeof backends)[keyof typeof backends]) => Promise<number>,
    ): Promise<Record<string, { stdout: unknown; stderr: string }>> => {
      const out: Record<string, { stdout: unknown; stderr: string }> = {};
      for (const [name, admin] of Object.entries(backends)) {
        const io = memoryIo();
        const ctx: CommandContext = { home: dir, cwd: dir, env: {}, io, clock, verbose: false };
        assert.equal(await command(ctx, admin), 0);
        const text = io.stdout.join('');
        out[name] = { stdout: text.startsWith('{') ? JSON.parse(text) : text, stderr: io.stderr.join('') };
      }
      return out;
    };
    const same = (r: Record<string, { stdout: unknown; stderr: string }>, omit: string[] = []): void => {
      const strip = (v: unknown): unknown =>
        v && typeof v === 'object' && !Array.isArray(v)
          ? Object.fromEntries(Object.entries(v).filter(([k]) => !omit.includes(k)))
          : v;
      assert.deepEqual(strip(r['redis']?.stdout), strip(r['sqlite']?.stdout));
      assert.equal(r['redis']?.stderr, r['sqlite']?.stderr);
    };

    const stats = await run((ctx, admin) => cacheStats(ctx, { json: true, admin }));
    same(stats, ['file', 'fileBytes']);
    assert.deepEqual(
      [stats['redis']?.stdout].map((s) => {
        const j = s as { entries: number; hits: number; perCodec: object; file: string };
        return [j.entries, j.hits, j.perCodec, j.file];
      }),
      [[2, 3, { deflate: 1, identity: 1 }, 'redis']],
    );
    same(await run((ctx, admin) => cacheList(ctx, { json: true, admin })));
    const table = await run((ctx, admin) => cacheList(ctx, { admin }));
    same(table);
    assert.match(
      String(table['redis']?.stdout),
      /abc100000000 .* gpt-4o .* 사과 .* deflate .* 2d ago .* expired 1d ago/,
    );
    same(await run((ctx, admin) => cacheShow(ctx, { prefix: 'abc1', json: true, admin })));
    same(await run((ctx, admin) => cacheShow(ctx, { prefix: 'abc2', admin })));
    await clock.advance(DAY / 2);
    same(await run((ctx, admin) => cacheList(ctx, { admin })));
    const pruned = await run((ctx, admin) => cachePrune(ctx, { json: true, admin }));
    assert.equal((pruned['redis']!.stdout as { deleted: number }).deleted, 1);
    same(pruned, ['fileBytesBefore', 'fileBytesAfter', 'freedBytes']);
    const cleared = await run((ctx, admin) =>
      cacheClear(ctx, { yes: true, model: 'mini', json: true, admin }),
    );
    assert.equal((cleared['redis']!.stdout as { deleted: number }).deleted, 1);
    same(cleared, ['fileBytesBefore', 'fileBytesAfter']);
    same(await run((ctx, admin) => cacheStats(ctx, { json: true, admin })), ['file', 'fileBytes']);
  });
});
