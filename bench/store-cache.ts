import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheKey } from '../src/cache/key.ts';
import { redisResponseCache } from '../src/cache/redis-store.ts';
import { SqliteResponseCache } from '../src/cache/sqlite-store.ts';
import type { CacheSettings, ResponseCache } from '../src/cache/store.ts';
import { systemClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';
import { connectRedis } from '../src/store/redis/connection.ts';
import { hasRedis, startRedisServer } from '../test/support/redis-server.ts';
import { cardJson } from './cache.ts';
import type { Bench, BenchRow } from './types.ts';

const N = 3000;
const WARMUP = 300;
const settings: CacheSettings = { ttlMs: 30 * 86_400_000, jitter: 0.1, compressThresholdBytes: 1024 };

/** p50 and p99 of each awaited call of `fn`, one after another as a job makes them, in µs. */
async function percentiles(n: number, fn: (i: number) => Promise<unknown>): Promise<[number, number]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn(i);
    times.push((performance.now() - start) * 1000);
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(times[Math.min(n - 1, Math.floor(q * n))] ?? 0);
  return [at(0.5), at(0.99)];
}

/** Puts then hits of ~2 KB card answers (compressed with deflate on both backends). */
async function measure(name: string, cache: ResponseCache): Promise<BenchRow[]> {
  const random = seededRandom(2026);
  const cards = Array.from({ length: N + WARMUP }, (_, i) => cardJson(random, i));
  const keys = cards.map((_c, i) =>
    cacheKey({
      baseUrl: 'https://api.example.com/v1',
      model: 'm',
      messages: [i],
      responseFormat: null,
      params: {},
    }),
  );
  const put = (i: number) => cache.put(keys[i] ?? '', { body: cards[i] ?? '', model: 'm', term: 'x' });
  await percentiles(WARMUP, (i) => put(N + i));
  const [putP50, putP99] = await percentiles(N, put);
  let hits = 0;
  await percentiles(WARMUP, (i) => cache.get(keys[N + i] ?? ''));
  const [getP50, getP99] = await percentiles(N, async (i) => {
    if (await cache.get(keys[i] ?? '')) hits++;
  });
  if (hits !== N) throw new Error(`bench: expected ${N} hits on ${name}, got ${hits}`);
  const note = `${N} ~2 KB answers, p50 / p99`;
  return [
    { name: `cache get hit, ${name} (p50)`, value: getP50, unit: 'µs', note },
    { name: `cache get hit, ${name} (p99)`, value: getP99, unit: 'µs' },
    { name: `cache put, ${name} (p50)`, value: putP50, unit: 'µs', note },
    { name: `cache put, ${name} (p99)`, value: putP99, unit: 'µs' },
  ];
}

/**
 * The response cache's hot operations on cache.db and on a local redis-server (no persistence):
 * what a shared cache costs per job. A SQLite put only queues the row (the group commit writes it
 * later, off the job's path); a Redis put is a round trip with the script.
 */
export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-bench-'));
  try {
    const sqlite = SqliteResponseCache.open(path.join(dir, 'cache.db'), settings, {
      clock: systemClock,
      random: seededRandom(1),
    });
    rows.push(...(await measure('SQLite', sqlite)));
    await sqlite.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!hasRedis) {
    rows.push({ name: 'cache on Redis', value: 0, unit: '', note: 'skipped: redis-server is not installed' });
    return rows;
  }
  const server = await startRedisServer();
  try {
    const conn = await connectRedis({ url: server.url, commandTimeoutMs: 5000 });
    try {
      rows.push(...(await measure('Redis', redisResponseCache(conn, { settings, random: seededRandom(1) }))));
    } finally {
      conn.disconnect();
    }
  } finally {
    await server.stop();
  }
  return rows;
};

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const row of await bench())
    console.log(`${row.name}: ${row.value} ${row.unit}${row.note ? ` (${row.note})` : ''}`);
}
