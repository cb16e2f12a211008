import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { limiterReset, limiterStatus } from '../src/commands/limiter.ts';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { createLimiter, parseRateLimitHeaders, sqliteLimiterStore } from '../src/limiter/index.ts';

function context(home: string, clock = new FakeClock()) {
  const io = memoryIo();
  const ctx: CommandContext = { home, cwd: home, env: {}, io, clock, verbose: false };
  return { ctx, io, clock };
}

const keyA = 'https://api.openai.com/v1|gpt-4o-mini|0123456789ab';
const keyB = 'https://openrouter.ai/api/v1|mistral|ba9876543210';

/** Two keys: A paced at 600 RPM / 100k TPM with one reservation (the second does not fit), B learned 300 RPM and then got a 429. */
async function seed(home: string, clock: FakeClock): Promise<void> {
  const db = openDatabase(path.join(home, 'state.db'));
  const store = sqliteLimiterStore(db, { clock });
  const settings = { burstSeconds: 1, shards: 'auto' as const, maxRequestTokens: 1000 };
  const info = (h: Record<string, string>) => parseRateLimitHeaders(new Headers(h), clock.now());
  const a = createLimiter(store, keyA, { ...settings, rpm: 600, tpm: 100_000 }, { clock });
  await a.reserve({ jobId: 'x', tokens: 1000 }, { maxWaitMs: 0 });
  await a.reserve({ jobId: 'y', tokens: 1000 }, { maxWaitMs: 0 });
  const b = createLimiter(store, keyB, settings, { clock });
  await b.observe({ status: 200, info: info({ 'x-ratelimit-limit-requests': '300' }) });
  await b.observe({ status: 429, info: info({ 'retry-after': '30' }) });
  db.close();
}

describe('flashcards limiter status', () => {
  test('with no data directory it says so and creates nothing', async () => {
    const home = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'missing');
    const { ctx, io } = context(home);
    assert.equal(await limiterStatus(ctx, { json: false }), 0);
    assert.deepEqual(io.stdout, ['no limiter state yet\n']);
    assert.equal(fs.existsSync(home), false);
  });

  test('a state database without limiter tables has no limiter state, and gets none', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    openDatabase(path.join(home, 'state.db')).close();
    const { ctx, io } = context(home);
    assert.equal(await limiterStatus(ctx, { json: false }), 0);
    assert.deepEqual(io.stdout, ['no limiter state yet\n']);
    const db = openDatabase(path.join(home, 'state.db'));
    assert.equal(
      db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'limiter%'").pluck().get(),
      0,
    );
    db.close();
  });

  test('--json with no state prints an empty key list', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    assert.equal(await limiterStatus(ctx, { json: true }), 0);
    assert.deepEqual(JSON.parse(io.stdout.join('')), {
      version: 1,
      now: new Date(clock.now()).toISOString(),
      keys: [],
    });
    assert.equal(fs.existsSync(path.join(home, 'state.db')), false);
  });

  // "available" uses the booking's tau (burst less the 200 ms slack), exactly what the next booking
  // admits after one 1000-token booking: RPM (800 - 100) / 100 ms = 7 requests, not 10 - 1 = 9;
  // TPM (800 - 1000 x 0.6 ms) / 0.6 ms = 333.3 tokens, not 1666.7 - 1000 = 666.7.
  test('--json shows every bucket and shard with tokens available now, pauses and provider limits', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    await seed(home, clock);
    assert.equal(await limiterStatus(ctx, { json: true }), 0);
    assert.equal(io.stderr.length, 0);
    const out = JSON.parse(io.stdout.join('')) as { keys: Record<string, unknown>[] };
    const now = new Date(clock.now()).toISOString();
    assert.deepEqual(
      out.keys.map((k) => k['key']),
      [keyA, keyB],
    );
    const a = out.keys[0] as { buckets: unknown[]; pausedUntil: unknown; shards: number };
    assert.equal(a.shards, 1);
    assert.equal(a.pausedUntil, null);
    assert.deepEqual(a.buckets, [
      {
        kind: 'rpm',
        rate: 600,
        burst: 10,
        configured: 600,
        available: 7,
        shards: [{ shard: 0, available: 7, tat: new Date(clock.now() + 100).toISOString(), updatedAt: now }],
      },
      {
        kind: 'tpm',
        rate: 100_000,
        burst: 1666.7,
        configured: 100_000,
        available: 333.3,
        shards: [
          { shard: 0, available: 333.3, tat: new Date(clock.now() + 600).toISOString(), updatedAt: now },
        ],
      },
    ]);
    const b = out.keys[1] as Record<string, unknown>;
    assert.equal(b['pausedUntil'], new Date(clock.now() + 30_000).toISOString());
    assert.equal(b['pauseReason'], '429 from the provider (Retry-After)');
    assert.deepEqual(b['provider'], { rpm: 300, tpm: null, seenAt: now });
    assert.equal(JSON.stringify(out).includes('sk-'), false);
  });

  test('the human view names each key, its pause and its buckets on stdout only', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    await seed(home, clock);
    assert.equal(await limiterStatus(ctx, { json: false }), 0);
    assert.deepEqual(io.stderr, []);
    const text = io.stdout.join('');
    assert.match(text, new RegExp(`${keyA.replace(/[|.]/g, '\\$&')}\\n  provider says: nothing yet`));
    assert.match(text, /provider says: 300 requests\/min \(seen 0ms ago\)/);
    assert.match(
      text,
      /paused for 30\.0s, until 2026-01-01T00:00:30\.000Z \(429 from the provider \(Retry-After\)\)/,
    );
    assert.match(text, /│ RPM +│ 600 +│ 600 +│ 10 +│ 7 \/ 10 +│ 7 +│/);
    assert.match(text, /│ TPM +│ 100000 +│ 100000 +│ 1666\.7 +│ 333\.3 \/ 1666\.7 +│ 333\.3 +│/);
  });
});

describe('flashcards limiter reset', () => {
  test('a key prefix resets only the keys it matches', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    await seed(home, clock);
    assert.equal(await limiterReset(ctx, { key: 'https://openrouter' }), 0);
    assert.deepEqual(io.stderr, ['reset limiter state for 1 key:\n', `  ${keyB}\n`]);
    const after = context(home, clock);
    await limiterStatus(after.ctx, { json: true });
    const keys = (JSON.parse(after.io.stdout.join('')) as { keys: { key: string }[] }).keys.map((k) => k.key);
    assert.deepEqual(keys, [keyA]);
  });

  test('without a key every key is reset', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    await seed(home, clock);
    assert.equal(await limiterReset(ctx, {}), 0);
    assert.deepEqual(io.stderr, ['reset limiter state for 2 keys:\n', `  ${keyA}\n`, `  ${keyB}\n`]);
  });

  test('a prefix that matches nothing says so', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    await seed(home, clock);
    assert.equal(await limiterReset(ctx, { key: 'https://nowhere' }), 0);
    assert.deepEqual(io.stderr, ['no limiter state matches "https://nowhere", nothing reset\n']);
  });

  test('with no data directory it says so and creates nothing', async () => {
    const home = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'missing');
    const { ctx, io } = context(home);
    assert.equal(await limiterReset(ctx, {}), 0);
    assert.deepEqual(io.stderr, ['no limiter state yet\n']);
    assert.equal(fs.existsSync(home), false);
  });
});

describe('flashcards limiter status: what runs saw', () => {
  test('the latency a run saw on a key (one model) and how the provider counts tokens', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
    const { ctx, io, clock } = context(home);
    const db = openDatabase(path.join(home, 'state.db'));
    const store = sqliteLimiterStore(db, { clock });
    const limiter = createLimiter(
      store,
      keyA,
      { burstSeconds: 1, shards: 'auto', maxRequestTokens: 1000 },
      { clock },
    );
    await limiter.noteLatency({ p50Ms: 3100, p75Ms: 3900 });
    await limiter.observe({
      status: 200,
      info: parseRateLimitHeaders(
        new Headers({ 'x-ratelimit-limit-tokens': '600000', 'x-ratelimit-reset-tokens': '300ms' }),
        clock.now(),
      ),
      answer: { promptTokens: 500, totalTokens: 900, maxTokens: 1500 },
    });
    db.close();
    await clock.advance(2000);
    assert.equal(await limiterStatus(ctx, { json: false }), 0);
    const text = io.stdout.join('');
    assert.match(text, /latency: 3\.1s median, 3\.9s p75 \(seen 2\.0s ago\)/);
    assert.match(text, /token budget: prompt \+ max_tokens booked when a request arrives/);
    io.stdout.length = 0;
    await limiterStatus(ctx, { json: true });
    const json = JSON.parse(io.stdout.join('')) as { keys: { latency: unknown; tokenAccounting: string }[] };
    assert.deepEqual(json.keys[0]?.latency, {
      p50Ms: 3100,
      p75Ms: 3900,
      at: new Date(clock.now() - 2000).toISOString(),
    });
    assert.equal(json.keys[0]?.tokenAccounting, 'upfront');
  });
});
