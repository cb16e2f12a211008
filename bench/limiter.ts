import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { systemClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { createLimiter, parseRateLimitHeaders, sqliteLimiterStore } from '../src/limiter/index.ts';
import type { Bench, BenchRow } from './types.ts';

const run = promisify(execFile);
const worker = fileURLToPath(new URL('../test/support/limiter-worker.ts', import.meta.url));

function tempDb(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-bench-')), 'state.db');
}

/** reserve + observe + settle, as the worker loop calls them, on a key whose rate never makes anyone wait. */
async function singleProcessCost(shards: number, ops: number): Promise<number> {
  const db = openDatabase(tempDb());
  const limiter = createLimiter(
    sqliteLimiterStore(db, { clock: systemClock }),
    `bench|${shards}`,
    { rpm: 1e9, tpm: 1e12, burstSeconds: 1, shards, maxRequestTokens: 1000 },
    { clock: systemClock },
  );
  // As OpenAI sends them: remaining counts down from a minute's budget, far above a 1 s burst.
  // The client parses them once per response; that is not the limiter's cost.
  const info = parseRateLimitHeaders(
    new Headers({
      'x-ratelimit-limit-requests': '1000000000',
      'x-ratelimit-remaining-requests': '999999000',
    }),
    Date.now(),
  );
  const once = async (i: number): Promise<void> => {
    const r = await limiter.reserve({ jobId: `j${i}`, tokens: 500 }, { maxWaitMs: Number.POSITIVE_INFINITY });
    await limiter.observe({ status: 200, info });
    if (r.ok) await r.settle(400);
  };
  for (let i = 0; i < 2000; i++) await once(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) await once(i);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / ops;
  db.close();
  return us;
}

interface CostResult {
  ops: number;
  elapsedMs: number;
}

/** `procs` OS processes hammering one key on one file at the same moment. */
async function multiProcessCost(
  procs: number,
  shards: number,
  ops: number,
): Promise<{ perOpUs: number; aggregateUs: number }> {
  const file = tempDb();
  const startAt = Date.now() + 1200;
  const results = await Promise.all(
    Array.from({ length: procs }, async (_, i) => {
      const args = {
        mode: 'cost',
        file,
        key: 'bench|mp',
        rpm: 1e9,
        tpm: 1e12,
        burstSeconds: 1,
        shards,
        startAt,
        ops,
        id: `p${i}`,
      };
      const { stdout } = await run(process.execPath, [worker, JSON.stringify(args)], { timeout: 60_000 });
      return JSON.parse(stdout) as CostResult;
    }),
  );
  const perOpUs = results.reduce((sum, r) => sum + (r.elapsedMs * 1000) / r.ops, 0) / results.length;
  const wallMs = Math.max(...results.map((r) => r.elapsedMs));
  return { perOpUs, aggregateUs: (wallMs * 1000) / (procs * ops) };
}

/** Real time, one process, 20 workers that reserve, sleep the delay and count the send. */
async function admittedAccuracy(rpm: number, seconds: number): Promise<{ admitted: number; ideal: number }> {
  const db = openDatabase(tempDb());
  const limiter = createLimiter(
    sqliteLimiterStore(db, { clock: systemClock }),
    'bench|rate',
    { rpm, burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 },
    {
      clock: systemClock,
    },
  );
  const start = Date.now();
  const end = start + seconds * 1000;
  let admitted = 0;
  let n = 0;
  const workerLoop = async (): Promise<void> => {
    for (;;) {
      const r = await limiter.reserve({ jobId: `j${n++}`, tokens: 0 }, { maxWaitMs: end - Date.now() });
      if (!r.ok) return;
      // A ref'd timer: systemClock's are unref'd, and nothing else keeps the bench process alive.
      await sleep(r.delayMs);
      if (Date.now() >= end) return;
      admitted++;
    }
  };
  await Promise.all(Array.from({ length: 20 }, workerLoop));
  db.close();
  return { admitted, ideal: (rpm * seconds) / 60 + rpm / 60 };
}

/** Three OS processes acquiring as fast as allowed (maxWait 0) on one key for `seconds`. */
async function multiProcessAccuracy(
  rpm: number,
  seconds: number,
): Promise<{ admitted: number; ideal: number }> {
  const file = tempDb();
  const startAt = Date.now() + 1200;
  const results = await Promise.all(
    ['a', 'b', 'c'].map(async (id) => {
      const args = {
        mode: 'admit',
        file,
        key: 'bench|mp-rate',
        rpm,
        burstSeconds: 1,
        shards: 'auto',
        startAt,
        durationMs: seconds * 1000,
        id,
      };
      const { stdout } = await run(process.execPath, [worker, JSON.stringify(args)], { timeout: 60_000 });
      return (JSON.parse(stdout) as { admitted: number[] }).admitted.length;
    }),
  );
  return { admitted: results.reduce((a, b) => a + b, 0), ideal: (rpm * seconds) / 60 + rpm / 60 };
}

export const bench: Bench = async () => {
  const rows: BenchRow[] = [];
  for (const shards of [1, 8, 64]) {
    rows.push({
      name: `acquire cost, 1 process, ${shards} shard${shards === 1 ? '' : 's'} (reserve+observe+settle)`,
      value: await singleProcessCost(shards, 20_000),
      unit: 'µs/op',
      note: 'WAL file, one IMMEDIATE transaction per op (one SELECT; refunds ride in the next booking)',
    });
  }
  for (const shards of [1, 8]) {
    const r = await multiProcessCost(4, shards, 5000);
    rows.push({
      name: `acquire cost, 4 processes on one file, ${shards} shard${shards === 1 ? '' : 's'}: per op in each process`,
      value: r.perOpUs,
      unit: 'µs/op',
      note: `${r.aggregateUs.toFixed(1)} µs/op aggregate; SQLite has one writer lock per file, shards do not split it`,
    });
  }
  const single = await admittedAccuracy(1200, 3);
  rows.push({
    name: 'admitted / ideal, 1 process, 20 workers, 1200 RPM for 3 s (real clock)',
    value: single.admitted / single.ideal,
    unit: 'ratio',
    note: `${single.admitted} of ${single.ideal} (rate x W + burst); burst is 1 s less 200 ms of slack`,
  });
  const multi = await multiProcessAccuracy(1200, 3);
  rows.push({
    name: 'admitted / ideal, 3 processes sharing one key, 1200 RPM for 3 s',
    value: multi.admitted / multi.ideal,
    unit: 'ratio',
    note: `${multi.admitted} of ${multi.ideal}`,
  });
  return rows;
};
