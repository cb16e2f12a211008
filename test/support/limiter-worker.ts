/**
 * A child process for the multi-process limiter test and benchmark: opens the shared state
 * database (or, with `redis`, the Redis store at that URL under that key prefix) and acquires
 * from one key. Prints JSON lines on stdout.
 *   book:  prints {"ready":true} once the store is open, waits for a line on stdin (the parent's
 *          go, once every child is ready), then reserves with maxWait 0 until `count` requests
 *          are admitted; reports the booked send time of each (the store's time under its lock).
 *   admit: from `startAt` for `durationMs`, reserve with maxWait 0 as fast as allowed; report
 *          the wall-clock time of every admission (benchmark only).
 *   cost:  from `startAt`, `ops` times reserve + observe + settle on a key with no room
 *          problems; report the elapsed time.
 * Without `startAt`, admit and cost start at the parent's go, as book does (children that start
 * slowly on a loaded machine then still begin together).
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/open.ts';
import {
  createLimiter,
  type LimiterStore,
  parseRateLimitHeaders,
  sqliteLimiterStore,
} from '../../src/limiter/index.ts';
import { redisLimiterStore } from '../../src/limiter/redis-store.ts';
import { connectRedis } from '../../src/store/redis/connection.ts';

interface Args {
  mode: 'book' | 'admit' | 'cost';
  file: string;
  key: string;
  rpm?: number;
  tpm?: number;
  burstSeconds: number;
  shards: number | 'auto';
  startAt?: number;
  durationMs?: number;
  count?: number;
  ops?: number;
  id: string;
  redis?: { url: string; prefix: string };
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
async function openStore(): Promise<{ store: LimiterStore; close(): void }> {
  if (args.redis !== undefined) {
    const conn = await connectRedis({ url: args.redis.url, commandTimeoutMs: 10_000 });
    return { store: redisLimiterStore(conn, { prefix: args.redis.prefix }), close: () => conn.disconnect() };
  }
  const db = openDatabase(args.file);
  return { store: sqliteLimiterStore(db, { clock: systemClock }), close: () => db.close() };
}
const { store, close } = await openStore();
const limiter = createLimiter(
  store,
  args.key,
  {
    rpm: args.rpm,
    tpm: args.tpm,
    burstSeconds: args.burstSeconds,
    shards: args.shards,
    maxRequestTokens: 1000,
  },
  { clock: systemClock },
);

/** Says the store is open, and resolves at the parent's go (a line on stdin) with the time. */
async function ready(): Promise<number> {
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.close();
  return Date.now();
}

if (args.mode === 'book') {
  await ready();
  const sendAt: number[] = [];
  for (let n = 0; sendAt.length < (args.count ?? 20); n++) {
    const r = await limiter.reserve({ jobId: `${args.id}:${n}`, tokens: 0 }, { maxWaitMs: 0 });
    if (r.ok) sendAt.push(r.sendAt);
    // A ref'd timer: systemClock's sleeps are unref'd and would let this process exit early.
    else await sleep(Math.min(r.delayMs, 100));
  }
  process.stdout.write(`${JSON.stringify({ sendAt })}\n`);
} else if (args.mode === 'admit') {
  const startAt = args.startAt ?? (await ready());
  await sleep(Math.max(0, startAt - Date.now()));
  const admitted: number[] = [];
  const end = startAt + (args.durationMs ?? 2000);
  let n = 0;
  while (Date.now() < end) {
    const r = await limiter.reserve({ jobId: `${args.id}:${n++}`, tokens: 0 }, { maxWaitMs: 0 });
    if (r.ok) admitted.push(Date.now());
    else await sleep(Math.max(0, Math.min(r.delayMs, end - Date.now())));
  }
  process.stdout.write(`${JSON.stringify({ admitted })}\n`);
} else {
  await sleep(Math.max(0, (args.startAt ?? (await ready())) - Date.now()));
  const info = parseRateLimitHeaders(
    new Headers({
      'x-ratelimit-limit-requests': String(args.rpm),
      'x-ratelimit-remaining-requests': String(args.rpm),
    }),
    Date.now(),
  );
  const ops = args.ops ?? 10_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const r = await limiter.reserve(
      { jobId: `${args.id}:${i}`, tokens: 500 },
      { maxWaitMs: Number.POSITIVE_INFINITY },
    );
    await limiter.observe({ status: 200, info });
    if (r.ok) await r.settle(400);
  }
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  process.stdout.write(`${JSON.stringify({ ops, elapsedMs })}\n`);
}
close();
