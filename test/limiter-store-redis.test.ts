import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';
import { openDatabase } from '../src/db/open.ts';
import type { BookRequest, Charge } from '../src/limiter/gcra.ts';
import { sqliteLimiterAdmin, sqliteLimiterStore } from '../src/limiter/index.ts';
import { redisLimiterAdmin } from '../src/limiter/redis-admin.ts';
import { limiterKeys, redisLimiterStore } from '../src/limiter/redis-store.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { limiterStoreConformance } from './conformance/limiter-store.ts';
import { randomOps, runOp } from './support/limiter-random-ops.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

let server: RedisServer | undefined;
const connections: RedisConnection[] = [];
before(async () => {
  if (!redisSkip) server = await startRedisServer();
});
after(async () => {
  for (const c of connections) c.disconnect();
  await server?.stop();
});

/** A connection of its own, as another process would have. */
async function connect(): Promise<RedisConnection> {
  if (server === undefined) throw new Error('no redis-server');
  const conn = await connectRedis({ url: server.url, commandTimeoutMs: 10_000 });
  connections.push(conn);
  return conn;
}

/** A key namespace of its own per test, instead of FLUSHALL, so tests can run side by side. */
const namespace = (): string => `t${randomUUID().slice(0, 8)}:`;

const key = 'https://api.test/v1|model|0123456789ab';
const rpm100: BookRequest = {
  shards: [0, 1],
  buckets: [{ kind: 'rpm', costMs: 100, tauMs: 800 }],
  maxWaitMs: Number.POSITIVE_INFINITY,
  refunds: [],
};

if (redisSkip) {
  test('LimiterStore conformance: Redis', { skip: redisSkip }, () => {});
} else {
  limiterStoreConformance('Redis', async (clock) => {
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
        for (const c of opened) await c.quit();
      },
    };
  });
}

/** Redis Cluster's slot of a key (CRC16-XMODEM of its hash tag, mod 16384), as CLUSTER KEYSLOT computes it. */
function keySlot(redisKey: string): number {
  const open = redisKey.indexOf('{');
  const close = open >= 0 ? redisKey.indexOf('}', open + 1) : -1;
  const hashed = close > open + 1 ? redisKey.slice(open + 1, close) : redisKey;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe('Redis limiter store', { skip: redisSkip }, () => {
  test('all of one limiter key shares one cluster slot; other keys are spread by their own tags', () => {
    // CLUSTER KEYSLOT foo is 12182, and a tag hashes alone: the arithmetic is Redis Cluster's.
    assert.deepEqual([keySlot('foo'), keySlot('{foo}:bar')], [12182, 12182]);
    const slotsOf = (k: string): Set<number> => new Set(Object.values(limiterKeys('fc:', k)).map(keySlot));
    assert.equal(slotsOf(key).size, 1);
    const models = Array.from({ length: 64 }, (_, i) => `https://api.test/v1|model-${i}|key`);
    const slots = new Set(models.map((m) => [...slotsOf(m)][0]));
    assert.ok(slots.size >= 60, `64 keys on ${slots.size} slots`);
    assert.match(limiterKeys('fc:', key).row, /^fc:\{lim:[0-9a-f]{24}\}:row$/);
  });

  test('a script the server forgot (SCRIPT FLUSH, a restart) is sent again, and answers the same', async () => {
    const clock = new FakeClock();
    const conn = await connect();
    const store = redisLimiterStore(conn, { prefix: namespace(), clock });
    assert.equal((await store.book(key, rpm100)).delayMs, 0);
    await conn.script('FLUSH');
    const again = await store.book(key, rpm100);
    assert.deepEqual(again, {
      ok: true,
      now: clock.now(),
      delayMs: 0,
      charges: [{ kind: 'rpm', shard: 1, costMs: 100, after: clock.now() + 100 }],
    });
    await conn.script('FLUSH');
    assert.equal((await store.markObserved(key)).observed_at, clock.now());
  });

  test('without a clock the time is Redis TIME, read inside the script', async () => {
    const conn = await connect();
    const store = redisLimiterStore(conn, { prefix: namespace() });
    const ms = async (): Promise<number> => {
      const [s, us] = await conn.time();
      return Number(s) * 1000 + Number(us) / 1000;
    };
    const before = await ms();
    const booking = await store.book(key, rpm100);
    const row = await store.pause(key, 1000, 'paused');
    const afterwards = await ms();
    assert.ok(booking.ok && booking.now >= before && booking.now <= afterwards);
    assert.ok(row.updated_at >= booking.now && row.updated_at <= afterwards);
    assert.equal(row.paused_until, row.updated_at + 1000);
  });

  test('namespaces are apart: an admin sees and resets only its prefix', async () => {
    const clock = new FakeClock();
    const [a, b] = [namespace(), namespace()];
    const conn = await connect();
    await redisLimiterStore(conn, { prefix: a, clock }).markObserved('https://one');
    await redisLimiterStore(conn, { prefix: b, clock }).markObserved('https://two');
    assert.deepEqual(
      (await redisLimiterAdmin(conn, { prefix: a, clock }).read()).keys.map((k) => k.row.key),
      ['https://one'],
    );
    assert.deepEqual(await redisLimiterAdmin(conn, { prefix: a, clock }).reset(undefined), ['https://one']);
    assert.equal((await redisLimiterAdmin(conn, { prefix: b, clock }).read()).keys.length, 1);
  });

  test('600 random operations give exactly the answers of the SQLite store (the scripts mirror the rules)', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-lim-diff-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    for (const seed of [1, 2, 3]) {
      const clock = new FakeClock();
      const db = openDatabase(path.join(dir, `${seed}.db`));
      const conn = await connect();
      const prefix = namespace();
      const stores = [sqliteLimiterStore(db, { clock }), redisLimiterStore(conn, { prefix, clock })] as const;
      const booked: [(Charge[] | null)[], (Charge[] | null)[]] = [[], []];
      const ops = randomOps(seededRandom(seed), 200);
      for (const [i, op] of ops.entries()) {
        if (op.op === 'advance') {
          await clock.advance(op.ms);
          continue;
        }
        const sqlite = await runOp(stores[0], clock, op, booked[0]);
        const redis = await runOp(stores[1], clock, op, booked[1]);
        assert.deepEqual(redis, sqlite, `seed ${seed}, operation ${i}: ${JSON.stringify(op)}`);
      }
      const admins = [sqliteLimiterAdmin(db, { clock }), redisLimiterAdmin(conn, { prefix, clock })];
      const [fromSqlite, fromRedis] = await Promise.all(admins.map((a) => a.read()));
      assert.deepEqual(fromRedis, fromSqlite, `seed ${seed}: admin read`);
      assert.deepEqual(await admins[1]?.reset('https://api.a'), await admins[0]?.reset('https://api.a'));
      db.close();
    }
  });
});

const worker = fileURLToPath(new URL('./support/limiter-worker.ts', import.meta.url));

/** A worker process on the Redis store; resolves with its JSON lines once it exits. */
function child(args: Record<string, unknown>) {
  const proc = spawn(process.execPath, [worker, JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: unknown[] = [];
  const waiting: (() => void)[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(JSON.parse(line));
    for (const w of waiting.splice(0)) w();
  });
  const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
  return {
    /** Resolves once the worker printed `n` lines (rejects if it exits first). */
    lines: async (n: number): Promise<unknown[]> => {
      while (lines.length < n) {
        const more = new Promise<void>((r) => waiting.push(r));
        const code = await Promise.race([more.then(() => undefined), exited]);
        if (code !== undefined && lines.length < n) throw new Error(`limiter worker exited (${code})`);
      }
      return lines;
    },
    go: (): void => void proc.stdin.end('go\n'),
  };
}

// The timeout only ends a hung child; nothing here is decided on the clock.
describe('several processes on one Redis', { skip: redisSkip }, () => {
  test('three OS processes admit at most rate x W + burst in every window of their booked send times', {
    timeout: 120_000,
  }, async () => {
    const rpm = 1200;
    const burst = 20;
    const count = 20;
    const redis = { url: server?.url, prefix: namespace() };
    const children = ['a', 'b', 'c'].map((id) =>
      child({
        mode: 'book',
        file: '',
        redis,
        key: 'mp|model|key',
        rpm,
        burstSeconds: 1,
        shards: 'auto',
        count,
        id,
      }),
    );
    for (const c of children) assert.deepEqual(await c.lines(1), [{ ready: true }]);
    for (const c of children) c.go();
    const results = await Promise.all(
      children.map(async (c) => ((await c.lines(2))[1] as { sendAt: number[] }).sendAt),
    );
    assert.deepEqual(
      results.map((r) => r.length),
      [count, count, count],
    );
    // Send times are Redis TIME inside the booking script: one clock for all three processes.
    const times = results.flat().sort((a, b) => a - b);
    let worst = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < times.length; i++) {
      for (let j = i; j < times.length; j++) {
        const windowMs = (times[j] ?? 0) - (times[i] ?? 0);
        worst = Math.max(worst, j - i + 1 - ((rpm * windowMs) / 60_000 + burst));
      }
    }
    assert.ok(worst <= 1e-6, `a window admitted ${worst.toFixed(3)} more than rate x W + burst`);
  });
});
