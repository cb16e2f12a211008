import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { type Random, seededRandom } from '../src/core/random.ts';
import { openDatabase } from '../src/db/open.ts';
import {
  createLimiter,
  type Limiter,
  type LimiterSettings,
  parseRateLimitHeaders,
  sqliteLimiterStore,
} from '../src/limiter/index.ts';

/**
 * Whole runs on fake time: worker pools that call the limiter the way the batch worker does,
 * against a provider that enforces its own GCRA limit and answers like OpenAI.
 */

interface ProviderOptions {
  rpm: number | null;
  burstSeconds: number;
  sendHeaders: boolean;
  latency: () => number;
  /** Time from our send to the provider's rate check (network jitter). */
  uplink: () => number;
}

class FakeProvider {
  readonly #clock: FakeClock;
  readonly #o: ProviderOptions;
  #tat = 0;
  accepted = 0;
  rejected = 0;

  constructor(clock: FakeClock, o: ProviderOptions) {
    this.#clock = clock;
    this.#o = o;
  }

  async call(): Promise<{ status: number; headers: Headers }> {
    await this.#clock.sleep(this.#o.uplink());
    const now = this.#clock.now();
    const headers = new Headers();
    let status = 200;
    if (this.#o.rpm !== null) {
      const interval = 60_000 / this.#o.rpm;
      const tau = Math.max(1, (this.#o.rpm * this.#o.burstSeconds) / 60) * interval;
      const next = Math.max(this.#tat, now) + interval;
      if (next - now > tau + 1e-9) {
        status = 429;
        headers.set('retry-after', String(Math.ceil((next - tau - now) / 1000)));
      } else {
        this.#tat = next;
      }
      if (this.#o.sendHeaders) {
        headers.set('x-ratelimit-limit-requests', String(this.#o.rpm));
        headers.set('x-ratelimit-remaining-requests', String(Math.floor((now + tau - this.#tat) / interval)));
        headers.set('x-ratelimit-reset-requests', `${Math.max(0, Math.ceil(this.#tat - now))}ms`);
      }
    }
    if (status === 200) this.accepted++;
    else this.rejected++;
    await this.#clock.sleep(this.#o.latency());
    return { status, headers };
  }
}

interface RunStats {
  requests: number;
  rateLimited: number;
  finishedAt: number;
}

/** One process's worker pool, shaped like src/batch/execute-job.ts. */
async function runPool(
  clock: FakeClock,
  limiter: Limiter,
  provider: FakeProvider,
  opts: { items: number; concurrency: number; random: Random; name: string },
): Promise<RunStats> {
  const stats: RunStats = { requests: 0, rateLimited: 0, finishedAt: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < opts.items) {
      const item = next++;
      for (let attempt = 1; ; attempt++) {
        const r = await limiter.reserve(
          { jobId: `${opts.name}:${item}`, tokens: 300 },
          { maxWaitMs: 120_000 },
        );
        if (!r.ok) {
          await clock.sleep(Math.min(Math.max(r.delayMs, 10), 1000));
          attempt--;
          continue;
        }
        await clock.sleep(r.delayMs);
        stats.requests++;
        const res = await provider.call();
        await limiter.observe({ status: res.status, info: parseRateLimitHeaders(res.headers, clock.now()) });
        if (res.status !== 429) {
          await r.settle(250);
          break;
        }
        await r.cancel();
        stats.rateLimited++;
        const retryAfter = Number(res.headers.get('retry-after') ?? 0) * 1000;
        const backoff = opts.random() * Math.min(30_000, 1000 * 2 ** (attempt - 1));
        await clock.sleep(Math.max(backoff, retryAfter));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  stats.finishedAt = clock.now();
  return stats;
}

async function drive(clock: FakeClock, work: Promise<unknown>): Promise<void> {
  let done = false;
  void work.then(() => {
    done = true;
  });
  // Let zero-delay continuations run before time first moves, as they would on a real clock.
  await new Promise<void>((r) => setImmediate(r));
  while (!done) await clock.advance(1000);
}

const base: LimiterSettings = { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 };
const jitter = (random: Random, lo: number, hi: number) => () => lo + random() * (hi - lo);

function limiterStore(file: string, clock: FakeClock) {
  return sqliteLimiterStore(openDatabase(file), { clock });
}

function dbFile(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'state.db');
}

/** One process against a fake provider at `rpm` (null = unlimited), with 100±50 ms latency by default. */
async function singleRun(o: {
  seed: number;
  rpm: number | null;
  sendHeaders: boolean;
  limit?: number | undefined;
  items: number;
  concurrency?: number;
  latency?: (random: Random) => () => number;
}): Promise<{ took: number; stats: Awaited<ReturnType<typeof runPool>> }> {
  const clock = new FakeClock();
  const random = seededRandom(o.seed);
  const start = clock.now();
  const provider = new FakeProvider(clock, {
    rpm: o.rpm,
    burstSeconds: 1,
    sendHeaders: o.sendHeaders,
    latency: (o.latency ?? ((r) => jitter(r, 50, 150)))(random),
    uplink: o.latency ? () => 0 : jitter(random, 0, 5),
  });
  const limiter = createLimiter(
    limiterStore(':memory:', clock),
    'p|m|k',
    { ...base, rpm: o.limit },
    { clock },
  );
  const work = runPool(clock, limiter, provider, {
    items: o.items,
    concurrency: o.concurrency ?? 20,
    random,
    name: 'a',
  });
  await drive(clock, work);
  const stats = await work;
  return { took: stats.finishedAt - start, stats };
}

describe('whole runs against a rate-limited provider (fake time)', () => {
  test('told 600 RPM (provider burst 1 s, 100±50 ms latency): 200 requests within 1/0.9 of ideal, <=1% 429s', async () => {
    const { took, stats } = await singleRun({ seed: 1, rpm: 600, sendHeaders: true, limit: 600, items: 200 });
    const ideal = (200 / 600) * 60_000;
    assert.ok(took <= ideal / 0.9, `took ${took} ms`);
    assert.ok(stats.rateLimited <= 2, `${stats.rateLimited} 429s`);
  });

  test('not told (provider at 300 RPM with headers): finishes with >=75% utilisation and <=10% 429s', async () => {
    const { took, stats } = await singleRun({ seed: 2, rpm: 300, sendHeaders: true, items: 200 });
    const ideal = (200 / 300) * 60_000;
    assert.ok(ideal / took >= 0.75, `took ${took} ms`);
    assert.ok(stats.rateLimited <= 0.1 * stats.requests, `${stats.rateLimited} 429s of ${stats.requests}`);
  });

  test('two processes sharing 600 RPM through one database: <=2% 429s, >=85% utilisation', async () => {
    const clock = new FakeClock();
    const random = seededRandom(3);
    const start = clock.now();
    const provider = new FakeProvider(clock, {
      rpm: 600,
      burstSeconds: 1,
      sendHeaders: true,
      latency: jitter(random, 50, 150),
      uplink: jitter(random, 0, 5),
    });
    const file = dbFile();
    const pools = ['a', 'b'].map((name) => {
      const limiter = createLimiter(limiterStore(file, clock), 'p|m|k', { ...base, rpm: 600 }, { clock });
      return runPool(clock, limiter, provider, { items: 150, concurrency: 10, random, name });
    });
    const work = Promise.all(pools);
    await drive(clock, work);
    const all = await work;
    const requests = all.reduce((n, s) => n + s.requests, 0);
    const limited = all.reduce((n, s) => n + s.rateLimited, 0);
    const took = Math.max(...all.map((s) => s.finishedAt)) - start;
    assert.ok(limited <= 0.02 * requests, `${limited} 429s of ${requests}`);
    assert.ok(((300 / 600) * 60_000) / took >= 0.85, `took ${took} ms`);
  });

  test('an unlimited provider without headers runs at full concurrency (5000 requests, 50 workers, 50 ms)', async () => {
    const { took, stats } = await singleRun({
      seed: 4,
      rpm: null,
      sendHeaders: false,
      items: 5000,
      concurrency: 50,
      latency: () => () => 50,
    });
    assert.equal(stats.rateLimited, 0);
    // Ideal 5 s; the first request alone probes for limits (one round trip).
    assert.ok(took <= 5000 * 1.1, `took ${took} ms`);
  });

  test('two processes learning an unknown 1200 RPM provider without headers: >=75% utilisation, <=10% 429s over 60 s', async () => {
    const clock = new FakeClock();
    const random = seededRandom(6);
    const start = clock.now();
    const provider = new FakeProvider(clock, {
      rpm: 1200,
      burstSeconds: 1,
      sendHeaders: false,
      latency: jitter(random, 50, 150),
      uplink: jitter(random, 0, 5),
    });
    const file = dbFile();
    const limiters = ['a', 'b'].map(() => createLimiter(limiterStore(file, clock), 'p|m|k', base, { clock }));
    const work = Promise.all(
      limiters.map((limiter, i) =>
        runPool(clock, limiter, provider, { items: 600, concurrency: 20, random, name: `p${i}` }),
      ),
    );
    await drive(clock, work);
    const all = await work;
    const requests = all.reduce((n, s) => n + s.requests, 0);
    const limited = all.reduce((n, s) => n + s.rateLimited, 0);
    const took = Math.max(...all.map((s) => s.finishedAt)) - start;
    const ideal = (1200 / 1200) * 60_000;
    assert.ok(ideal / took >= 0.75, `took ${took} ms`);
    assert.ok(limited <= 0.1 * requests, `${limited} 429s of ${requests}`);
  });

  test('a provider at 300 RPM sending no headers at all: AIMD keeps >=80% utilisation with <=15% 429s', async () => {
    const { took, stats } = await singleRun({ seed: 5, rpm: 300, sendHeaders: false, items: 300 });
    const ideal = (300 / 300) * 60_000;
    assert.ok(ideal / took >= 0.8, `took ${took} ms`);
    assert.ok(stats.rateLimited <= 0.15 * stats.requests, `${stats.rateLimited} 429s of ${stats.requests}`);
  });
});
