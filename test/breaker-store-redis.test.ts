import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { breakerKeyHash, redisBreakerStore } from '../src/resilience/breaker-store-redis.ts';
import {
  breakerHistory,
  type CallOutcome,
  CircuitBreaker,
  classifyHttpError,
  defaultBreakerSettings,
} from '../src/resilience/index.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { breakerStoreConformance } from './conformance/breaker-store.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

const key = 'https://api.example.com/v1|gpt-test|abc123def456';
const otherKey = 'https://other.example/v1|m|nokey';
const windowMs = 30_000;

/** The Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key without one, mod 16384. */
function keySlot(k: string): number {
  const open = k.indexOf('{');
  const close = open < 0 ? -1 : k.indexOf('}', open + 1);
  const hashed = close > open + 1 ? k.slice(open + 1, close) : k;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** Every key under `prefix`, by SCAN. */
async function keysUnder(redis: RedisConnection, prefix: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

describe('breaker store on Redis', { skip: redisSkip }, () => {
  let server: RedisServer;
  /** Connections opened by a test; closed at the end of the file (the server goes with them). */
  const connections: RedisConnection[] = [];
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    for (const c of connections.splice(0)) c.disconnect();
    await server?.stop();
  });

  /** Another process: its own connection to the server. */
  async function connect(): Promise<RedisConnection> {
    const redis = await connectRedis({ url: server.url, commandTimeoutMs: 10_000 });
    connections.push(redis);
    return redis;
  }

  /** A namespace of its own per test, so tests never see each other's keys (no FLUSHALL). */
  const freshPrefix = (): string => `fct-${randomBytes(6).toString('hex')}:`;

  breakerStoreConformance('Redis', async (clock) => {
    const prefix = freshPrefix();
    const mine: RedisConnection[] = [];
    return {
      async connect() {
        const redis = await connect();
        mine.push(redis);
        return redisBreakerStore(redis, { prefix, clock });
      },
      async close() {
        for (const redis of mine) redis.disconnect();
      },
    };
  });

  describe('Redis only', () => {
    test('after SCRIPT FLUSH (a restarted server) every script is sent again: EVALSHA falls back to EVAL', async () => {
      const clock = new FakeClock();
      const t0 = clock.now();
      const redis = await connect();
      const store = redisBreakerStore(redis, { prefix: freshPrefix(), clock });
      const isolated = { state: 'isolated', openedAt: t0, opens: 0, reason: 'maintenance' } as const;
      const note = { from: 'closed', cause: 'isolated by hand' } as const;
      // Every script once, so the connection has loaded them all and sends EVALSHA from now on.
      await store.ensure(key);
      await store.record(key, { calls: 2, failures: 1 }, windowMs);
      await store.transit(key, 0, { next: isolated, note, resetWindow: false });
      await store.read(key, windowMs);
      assert.equal(await store.remove(otherKey), false);

      await redis.config('RESETSTAT');
      assert.equal(await redis.script('FLUSH'), 'OK');
      await store.ensure(key);
      const r = await store.record(key, { calls: 1, failures: 1 }, windowMs);
      assert.deepEqual(
        [r.counted, r.snapshot.window, r.snapshot.version],
        [false, { calls: 2, failures: 1 }, 1],
      );
      assert.deepEqual(
        await store.transit(key, 1, {
          next: { state: 'closed' },
          note: { from: 'isolated', cause: 'closed by hand' },
          resetWindow: true,
        }),
        { ok: true, at: t0 },
      );
      assert.deepEqual((await store.read(key, windowMs)).circuit, { state: 'closed' });
      assert.equal(await store.remove(key), true);
      // Five scripts: each EVALSHA met NOSCRIPT once, and each EVAL loaded its script again.
      const stats = await redis.info('commandstats');
      assert.match(stats, /cmdstat_evalsha:calls=\d+,.*failed_calls=5\b/);
      assert.match(stats, /cmdstat_eval:calls=5,/);
      assert.deepEqual(
        (await store.history(5)).map((e) => e.cause),
        ['closed by hand', 'isolated by hand'],
      );
    });

    test("one breaker's keys share one Cluster slot; another breaker's keys carry another tag", async () => {
      const clock = new FakeClock();
      const t0 = clock.now();
      const prefix = freshPrefix();
      const redis = await connect();
      const store = redisBreakerStore(redis, { prefix, clock });
      for (const k of [key, otherKey]) {
        await store.record(k, { calls: 1, failures: 1 }, windowMs);
        await store.transit(k, 0, {
          next: { state: 'open', openedAt: t0, retryAt: t0 + 30_000, opens: 1, reason: 'r' },
          note: { from: 'closed', cause: 'tripped' },
          resetWindow: false,
        });
      }
      const tagOf = (k: string): string => `${prefix}{cb:${breakerKeyHash(k)}}`;
      assert.deepEqual(
        await keysUnder(redis, prefix),
        [
          `${prefix}{cb}:keys`,
          ...[key, otherKey].flatMap((k) => ['history', 'state', 'window'].map((s) => `${tagOf(k)}:${s}`)),
        ].sort(),
      );
      for (const k of [key, otherKey]) {
        const slots = new Set(['state', 'window', 'history'].map((s) => keySlot(`${tagOf(k)}:${s}`)));
        assert.equal(slots.size, 1, `${k}: ${[...slots]}`);
      }
      // Known vectors of Redis's CRC16, so the arithmetic above is the server's.
      assert.deepEqual(
        [keySlot('123456789'), keySlot('foo'), keySlot('{user1000}.following')],
        [12739, 12182, 3443],
      );
      assert.notEqual(tagOf(key), tagOf(otherKey));
    });

    test('the state hash holds the columns of the state.db row, so status prints the same', async () => {
      const clock = new FakeClock();
      const t0 = clock.now();
      const prefix = freshPrefix();
      const redis = await connect();
      const store = redisBreakerStore(redis, { prefix, clock });
      await store.record(
        key,
        { calls: 1, failures: 1, error: { kind: 'server', message: 'HTTP 503' } },
        windowMs,
      );
      await clock.advance(1000);
      await store.transit(key, 0, {
        next: {
          state: 'half_open',
          openedAt: t0,
          opens: 2,
          probe: { owner: 'run-7', until: t0 + 91_000 },
          reason: 'tripped',
        },
        note: null,
        resetWindow: false,
      });
      assert.deepEqual(await redis.hgetall(`${prefix}{cb:${breakerKeyHash(key)}}:state`), {
        key,
        state: 'half_open',
        opened_at: String(t0),
        consecutive_opens: '2',
        probe_owner: 'run-7',
        probe_until: String(t0 + 91_000),
        reason: 'tripped',
        last_error_kind: 'server',
        last_error_message: 'HTTP 503',
        last_error_at: String(t0),
        updated_at: String(t0 + 1000),
        version: '1',
      });
    });

    test('without a clock, the time is the Redis server’s (TIME), not this host’s', async () => {
      const redis = await connect();
      const store = redisBreakerStore(redis, { prefix: freshPrefix() });
      const serverMs = async (): Promise<number> => {
        const [s, us] = await redis.time();
        return Number(s) * 1000 + Math.floor(Number(us) / 1000);
      };
      const before = await serverMs();
      const r = await store.transit(key, 0, {
        next: { state: 'isolated', openedAt: before, opens: 0, reason: null },
        note: { from: 'closed', cause: 'isolated by hand' },
        resetWindow: false,
      });
      const after = await serverMs();
      assert.ok(r.ok && r.at >= before && r.at <= after, `${JSON.stringify(r)} in [${before}, ${after}]`);
      const s = await store.read(key, windowMs);
      assert.ok(s.now >= r.at, `read at ${s.now}, written at ${r.at}`);
      assert.equal((await store.history(1))[0]?.at, r.at);
    });

    test('a prefix with a brace is refused: it would put every breaker in one slot', async () => {
      const redis = await connect();
      assert.throws(
        () => redisBreakerStore(redis, { prefix: 'fc:{x}:' }),
        (e: unknown) =>
          isFlashcardsError(e) && e.kind === 'usage' && /must not contain \{ or \}/.test(e.message),
      );
    });
  });

  describe('the breaker facade across processes on Redis', () => {
    const fail: CallOutcome = { ok: false, error: classifyHttpError(503, '', new Headers(), 0) };

    /** `n` processes (own connection, own owner id) on one namespace and one fake clock. */
    async function processes(
      n: number,
    ): Promise<{ clock: FakeClock; prefix: string; breakers: CircuitBreaker[] }> {
      const clock = new FakeClock();
      const prefix = freshPrefix();
      const breakers: CircuitBreaker[] = [];
      for (let i = 1; i <= n; i++) {
        const store = redisBreakerStore(await connect(), { prefix, clock });
        breakers.push(new CircuitBreaker(store, key, defaultBreakerSettings, { clock, ownerId: `p${i}` }));
      }
      return { clock, prefix, breakers };
    }

    test('a trip in one process rejects the others; after the break exactly one of them probes', async () => {
      const { clock, breakers } = await processes(3);
      const [p1, p2, p3] = breakers as [CircuitBreaker, CircuitBreaker, CircuitBreaker];
      for (let i = 0; i < 10; i++) {
        const d = await (i % 2 ? p1 : p2).acquire();
        assert.equal(d.allowed, true);
        await (i % 2 ? p1 : p2).record(fail, { probe: false });
      }
      assert.equal((await p3.status()).state, 'open');
      await clock.advance(250);
      assert.equal((await p1.acquire()).allowed, false);
      await clock.advance(30_000);
      const decisions = await Promise.all(breakers.map((b) => b.acquire()));
      assert.deepEqual(decisions.map((d) => (d.allowed ? `probe ${d.probe}` : d.state)).sort(), [
        'half_open',
        'half_open',
        'probe true',
      ]);
      const prober = breakers[decisions.findIndex((d) => d.allowed)];
      await prober?.record({ ok: true }, { probe: true });
      assert.equal((await p3.status()).state, 'closed');
    });

    test('an isolate from one process holds in every other until another closes it', async () => {
      const { clock, prefix, breakers } = await processes(3);
      const [p1, p2, p3] = breakers as [CircuitBreaker, CircuitBreaker, CircuitBreaker];
      assert.deepEqual(await p1.acquire(), { allowed: true, probe: false });
      await p2.isolate('provider maintenance');
      await clock.advance(250);
      assert.deepEqual(await p1.acquire(), {
        allowed: false,
        state: 'isolated',
        retryAtMs: null,
        reason: 'circuit isolated by hand: provider maintenance',
      });
      await p3.close();
      assert.deepEqual(await p1.acquire(), { allowed: true, probe: false });
      // `breaker history` from a fourth connection (another host) sees both changes.
      const admin = redisBreakerStore(await connect(), { prefix, clock });
      assert.deepEqual(
        (await breakerHistory(admin, 10)).map((t) => [t.from, t.to, t.cause]),
        [
          ['isolated', 'closed', 'closed by hand'],
          ['closed', 'isolated', 'isolated by hand: provider maintenance'],
        ],
      );
    });
  });
});
