import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { redisBreakerStore } from '../src/resilience/breaker-store-redis.ts';
import {
  type BreakerStore,
  type CallOutcome,
  CircuitBreaker,
  classifyHttpError,
  defaultBreakerSettings,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';
import { connectRedis } from '../src/store/redis/connection.ts';
import { redisSkip, startRedisServer } from '../test/support/redis-server.ts';
import type { Bench, BenchRow } from './types.ts';

const calls = 5000;

/** p50 and p99 in µs of `fn`, awaited one call after another as the worker loop does, after a warm-up. */
async function percentiles(fn: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 500; i++) await fn();
  const us: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await fn();
    us.push((performance.now() - start) * 1000);
  }
  us.sort((a, b) => a - b);
  const at = (q: number): number =>
    Math.round((us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? 0) * 10) / 10;
  return { p50: at(0.5), p99: at(0.99) };
}

/**
 * The breaker's operations that go to the store, on each backend: an acquire whose cached state has
 * expired (one read, every 250 ms per process) and a failure (one record). Both one round trip on Redis.
 */
async function measure(backend: string, store: BreakerStore): Promise<BenchRow[]> {
  const failure: CallOutcome = { ok: false, error: classifyHttpError(503, '', new Headers(), 0) };
  const reread = new CircuitBreaker(store, 'bench|healthy|nokey', defaultBreakerSettings, {
    clock: systemClock,
    ownerId: 'bench',
    stateCacheMs: 0,
  });
  // Never opens, so every failure takes the full closed-state path (count, last error, window sum).
  const failing = new CircuitBreaker(
    store,
    'bench|failing|nokey',
    { ...defaultBreakerSettings, minThroughput: 1e9 },
    { clock: systemClock, ownerId: 'bench' },
  );
  const rows: BenchRow[] = [];
  const ops: [string, () => Promise<unknown>][] = [
    ['acquire (state re-read)', () => reread.acquire()],
    ['record failure', () => failing.record(failure, { probe: false })],
  ];
  for (const [name, fn] of ops) {
    const { p50, p99 } = await percentiles(fn);
    rows.push({ name: `breaker ${name}, ${backend}, p50`, value: p50, unit: 'µs/op' });
    rows.push({ name: `breaker ${name}, ${backend}, p99`, value: p99, unit: 'µs/op' });
  }
  return rows;
}

/** `npm run bench store-breaker`: the breaker store on state.db (WAL, temp dir) and on a local redis-server. */
export const bench: Bench = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-'));
  const db = openDatabase(join(dir, 'state.db'));
  const rows: BenchRow[] = [];
  try {
    rows.push(...(await measure('SQLite', new SqliteBreakerStore(db, systemClock))));
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (redisSkip) {
    rows.push({ name: 'breaker on Redis: skipped', value: 0, unit: '', note: redisSkip });
    return rows;
  }
  const server = await startRedisServer();
  const redis = await connectRedis({ url: server.url, commandTimeoutMs: 5000 });
  try {
    rows.push(...(await measure('Redis (127.0.0.1, TIME)', redisBreakerStore(redis))));
  } finally {
    redis.disconnect();
    await server.stop();
  }
  return rows;
};
