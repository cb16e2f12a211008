import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRedisBatchStores } from '../src/batch/redis-stores.ts';
import { openSqliteBatchStores } from '../src/batch/sqlite-stores.ts';
import type { BatchMeta, BatchStores, ClaimedItem, JobOutcome } from '../src/batch/store.ts';
import { systemClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { connectRedis } from '../src/store/redis/connection.ts';
import { hasRedis, startRedisServer } from '../test/support/redis-server.ts';
import type { Bench, BenchRow } from './types.ts';

/** Items per measured batch; claims take CLAIM at a time, as a run with concurrency 16 does. */
const ITEMS = 4000;
const CLAIM = 8;
/** Outcomes sent together in the pipelined Redis figure: one run's workers finishing at once. */
const IN_FLIGHT = 16;

const meta = (id: string): BatchMeta => ({
  id,
  inputName: 'bench.txt',
  inputDigest: 'd',
  settingsHash: 's',
  pipeline: 'vocabulary',
  stages: ['cards'],
  model: 'm',
  baseUrl: 'http://127.0.0.1:1/v1',
  outputPath: null,
  format: 'jsonl',
  settings: {},
});

const outcome = (batchId: string, item: ClaimedItem): JobOutcome => ({
  batchId,
  idx: item.idx,
  stage: 'cards',
  token: item.token,
  attempts: 1,
  requests: 1,
  promptTokens: 120,
  completionTokens: 80,
  cached: false,
  durationMs: 900,
  requestMs: 850,
});

/** A card-sized answer: what a job stores. */
const answer = {
  front: 'word',
  back: 'a meaning, an example sentence and its translation',
  tags: ['x', 'y'],
};

async function load(stores: BatchStores, id: string): Promise<void> {
  await stores.catalog.create(meta(id), 'bench');
  for (let first = 0; first < ITEMS; first += 500) {
    const items = Array.from({ length: Math.min(500, ITEMS - first) }, (_, i) => ({
      idx: first + i,
      term: `word${first + i}`,
      line: first + i + 2,
      context: { note: 'n' },
    }));
    await stores.catalog.insertItems(id, items, ['cards']);
  }
  await stores.catalog.finishLoading(id, ITEMS);
}

async function timed<T>(samples: number[], fn: () => Promise<T>): Promise<T> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  return value;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function rows(backend: string, op: string, samples: number[], note?: string): BenchRow[] {
  return [50, 99].map((p) => ({
    name: `${backend}: ${op} p${p}`,
    value: percentile(samples, p),
    unit: 'µs',
    ...(note ? { note } : {}),
  }));
}

/**
 * Claims the whole batch CLAIM items at a time, completing each item's one job as it goes:
 * latency of each claim, and of each outcome (awaited one after another, or IN_FLIGHT at once).
 */
async function measure(
  stores: BatchStores,
  id: string,
  mode: 'awaited' | 'committed' | 'pipelined',
): Promise<{ claim: number[]; complete: number[] }> {
  const claim: number[] = [];
  const complete: number[] = [];
  for (;;) {
    const limit = mode === 'pipelined' ? IN_FLIGHT : CLAIM;
    const items = await timed(claim, () => stores.queue.claim(id, 'bench', 60_000, limit));
    if (items.length === 0) break;
    if (mode === 'pipelined') {
      const t0 = process.hrtime.bigint();
      await Promise.all(items.map((item) => stores.results.completeJob(outcome(id, item), answer, true)));
      const perOutcome = Number(process.hrtime.bigint() - t0) / 1000 / items.length;
      for (const _ of items) complete.push(perOutcome);
      continue;
    }
    for (const item of items) {
      await timed(complete, async () => {
        await stores.results.completeJob(outcome(id, item), answer, true);
        if (mode === 'committed') await stores.results.flush();
      });
    }
  }
  await stores.results.flush();
  if ((await stores.results.counts(id)).done !== ITEMS) throw new Error(`batch ${id} did not finish`);
  return { claim, complete };
}

/** claim and complete on a real state.db (WAL, temp dir) and on a throwaway local redis-server. */
export const bench: Bench = async () => {
  const out: BenchRow[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-'));
  const db = openDatabase(join(dir, 'state.db'));
  try {
    const sqlite = openSqliteBatchStores(db, systemClock);
    await load(sqlite, 'queued');
    const queued = await measure(sqlite, 'queued', 'awaited');
    await load(sqlite, 'committed');
    const committed = await measure(sqlite, 'committed', 'committed');
    out.push(
      ...rows('SQLite', `claim ${CLAIM} items`, queued.claim),
      ...rows('SQLite', 'complete (queued for the group commit)', queued.complete),
      ...rows('SQLite', 'complete + flush (committed)', committed.complete),
    );
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (!hasRedis) {
    out.push({ name: 'Redis: skipped', value: 0, unit: '', note: 'redis-server is not installed' });
    return out;
  }
  const server = await startRedisServer();
  const conn = await connectRedis({ url: server.url, commandTimeoutMs: 10_000 });
  try {
    if (process.env['BENCH_STATS']) await conn.config('RESETSTAT');
    const redis = openRedisBatchStores(conn, { prefix: 'bench:' });
    await load(redis, 'awaited');
    const awaited = await measure(redis, 'awaited', 'awaited');
    await load(redis, 'pipelined');
    const pipelined = await measure(redis, 'pipelined', 'pipelined');
    out.push(
      ...rows('Redis', `claim ${CLAIM} items`, awaited.claim, 'one script, local server'),
      ...rows('Redis', 'complete (stored when resolved)', awaited.complete),
      ...rows('Redis', `complete, ${IN_FLIGHT} in flight (per outcome)`, pipelined.complete),
    );
    if (process.env['BENCH_STATS']) process.stderr.write(`${await conn.info('commandstats')}\n`);
  } finally {
    conn.disconnect();
    await server.stop();
  }
  return out;
};

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await bench()) {
    process.stdout.write(`  ${r.name.padEnd(60)} ${r.value.toFixed(0).padStart(8)} ${r.unit}\n`);
  }
}
