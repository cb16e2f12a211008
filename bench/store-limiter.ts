/**
 * The limiter's store on Redis against SQLite: latency of the hot operation (a booking, and a
 * whole reserve + observe + settle as the worker loop calls it), the rate that several processes
 * on one Redis admit, and whether sharding one key over cluster nodes would pay (the server time
 * a booking costs, read from INFO commandstats). Starts its own redis-server; needs one installed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import type { BookRequest } from '../src/limiter/gcra.ts';
import {
  createLimiter,
  type LimiterStore,
  parseRateLimitHeaders,
  sqliteLimiterStore,
} from '../src/limiter/index.ts';
import { redisLimiterStore } from '../src/limiter/redis-store.ts';
import { connectRedis, type RedisConnection } from '../src/store/redis/connection.ts';
import { hasRedis, startRedisServer } from '../test/support/redis-server.ts';
import type { Bench, BenchRow } from './types.ts';

const worker = fileURLToPath(new URL('../test/support/limiter-worker.ts', import.meta.url));

/** p50 and p99 of `n` awaited calls, in µs, after a warm-up. */
async function percentiles(
  n: number,
  fn: (i: number) => Promise<unknown>,
): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < 500; i++) await fn(i);
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  us.sort((a, b) => a - b);
  const at = (q: number): number => us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

/** A booking on a key whose rate never makes anyone wait: both buckets, two shard choices. */
function bookRequest(i: number, shards: number): BookRequest {
  return {
    shards: [i % shards, (i + 1) % shards],
    buckets: [
      { kind: 'rpm', costMs: 1e-6, tauMs: 1e12 },
      { kind: 'tpm', costMs: 5e-4, tauMs: 1e12 },
    ],
    maxWaitMs: Number.POSITIVE_INFINITY,
    refunds: [],
  };
}

/** reserve + observe + settle through the limiter, as bench/limiter.ts measures it on SQLite. */
async function reserveSettle(store: LimiterStore, key: string): Promise<{ p50: number; p99: number }> {
  const limiter = createLimiter(
    store,
    key,
    { rpm: 1e9, tpm: 1e12, burstSeconds: 1, shards: 8, maxRequestTokens: 1000 },
    { clock: systemClock },
  );
  const info = parseRateLimitHeaders(
    new Headers({
      'x-ratelimit-limit-requests': '1000000000',
      'x-ratelimit-remaining-requests': '999999000',
    }),
    Date.now(),
  );
  return percentiles(5000, async (i) => {
    const r = await limiter.reserve({ jobId: `j${i}`, tokens: 500 }, { maxWaitMs: Number.POSITIVE_INFINITY });
    await limiter.observe({ status: 200, info });
    if (r.ok) await r.settle(400);
  });
}

/**
 * Worker processes on one Redis, started together: each says it is ready once its store is open
 * (six start slowly on a loaded 2-core machine), then all get the go at once; each answer is its
 * last JSON line.
 */
async function workers<T>(procs: number, args: (i: number) => Record<string, unknown>): Promise<T[]> {
  const children = Array.from({ length: procs }, (_, i) => {
    const proc = spawn(process.execPath, [worker, JSON.stringify(args(i))], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines: string[] = [];
    let onLine = (): void => {};
    createInterface({ input: proc.stdout }).on('line', (line) => {
      lines.push(line);
      onLine();
    });
    const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()));
    const firstLine = new Promise<void>((resolve) => {
      onLine = resolve;
    });
    return { proc, lines, exited, ready: Promise.race([firstLine, exited]) };
  });
  await Promise.all(children.map((c) => c.ready));
  for (const c of children) c.proc.stdin.end('go\n');
  return Promise.all(
    children.map(async (c) => {
      await c.exited;
      const last = c.lines.at(-1);
      if (last === undefined || c.lines.length < 2)
        throw new Error('limiter worker exited without an answer');
      return JSON.parse(last) as T;
    }),
  );
}

/** `procs` processes booking as fast as allowed (maxWait 0) on one key at `rpm` for `seconds`. */
async function admitted(url: string, procs: number, rpm: number, seconds: number): Promise<number> {
  const redis = { url, prefix: `bench${procs}:` };
  const results = await workers<{ admitted: number[] }>(procs, (i) => ({
    mode: 'admit',
    file: '',
    redis,
    key: 'bench|rate',
    rpm,
    burstSeconds: 1,
    shards: 'auto',
    durationMs: seconds * 1000,
    id: `p${i}`,
  }));
  return results.reduce((sum, r) => sum + r.admitted.length, 0);
}

/** Server-side µs per call of the booking script (INFO commandstats), and the calls counted. */
async function serverUsPerBooking(conn: RedisConnection): Promise<{ us: number; calls: number }> {
  const stats = String(await conn.info('commandstats'));
  let calls = 0;
  let usec = 0;
  for (const m of stats.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/g)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { us: calls === 0 ? 0 : usec / calls, calls };
}

/** Six processes booking flat out on one key with `shards` shards: bookings/s, and server µs a booking. */
async function capacity(
  url: string,
  conn: RedisConnection,
  shards: number,
): Promise<{ perSecond: number; us: number }> {
  await conn.config('RESETSTAT');
  const ops = 3000;
  const results = await workers<{ ops: number; elapsedMs: number }>(6, (i) => ({
    mode: 'cost',
    file: '',
    redis: { url, prefix: `cap${shards}:` },
    key: 'bench|capacity',
    rpm: 1e9,
    tpm: 1e12,
    burstSeconds: 1,
    shards,
    ops,
    id: `p${i}`,
  }));
  const wallMs = Math.max(...results.map((r) => r.elapsedMs));
  return { perSecond: (6 * ops * 1000) / wallMs, us: (await serverUsPerBooking(conn)).us };
}

export const bench: Bench = async () => {
  if (!hasRedis)
    return [{ name: 'limiter store on Redis: skipped', value: 0, unit: '', note: 'no redis-server' }];
  const rows: BenchRow[] = [];
  const server = await startRedisServer();
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-'));
  const db = openDatabase(join(dir, 'state.db'));
  const conn = await connectRedis({ url: server.url, commandTimeoutMs: 10_000 });
  try {
    const stores: [string, LimiterStore][] = [
      ['SQLite', sqliteLimiterStore(db, { clock: systemClock })],
      ['Redis', redisLimiterStore(conn, { prefix: 'lat:' })],
    ];
    for (const [name, store] of stores) {
      await conn.config('RESETSTAT');
      const book = await percentiles(5000, (i) => store.book('bench|book', bookRequest(i, 8)));
      // Redis runs one script at a time: its time a booking bounds what one node books a second.
      const server = name === 'Redis' ? await serverUsPerBooking(conn) : undefined;
      rows.push({
        name: `book p50, ${name} (one store operation: 2 buckets, 8 shards)`,
        value: book.p50,
        unit: 'µs',
        note:
          `p99 ${book.p99.toFixed(0)} µs` +
          (server === undefined
            ? ''
            : `; ${server.us.toFixed(1)} µs of server time: one node books ~${Math.round(1e6 / server.us / 1000)}k/s`),
      });
    }
    for (const [name, store] of stores) {
      const whole = await reserveSettle(store, `bench|whole|${name}`);
      rows.push({
        name: `reserve+observe+settle p50, ${name}`,
        value: whole.p50,
        unit: 'µs',
        note: `p99 ${whole.p99.toFixed(0)} µs; refunds ride in the next booking: one round trip a request`,
      });
    }
    for (const procs of [1, 3, 6]) {
      const ideal = 1200 * (3 / 60) + 1200 / 60;
      const n = await admitted(server.url, procs, 1200, 3);
      rows.push({
        name: `admitted / ideal, ${procs} process${procs === 1 ? '' : 'es'} on one Redis, 1200 RPM for 3 s`,
        value: n / ideal,
        unit: 'ratio',
        note: `${n} of ${ideal} (rate x W + burst)`,
      });
    }
    for (const shards of [1, 8]) {
      const c = await capacity(server.url, conn, shards);
      rows.push({
        name: `one key, 6 processes flat out, ${shards} shard${shards === 1 ? '' : 's'}: bookings/s on one Redis`,
        value: c.perSecond,
        unit: '/s',
        note: `${c.us.toFixed(1)} µs of server time a call; the clients, on the same cores, are the limit here`,
      });
    }
  } finally {
    conn.disconnect();
    db.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
  return rows;
};
