import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { type CacheSettings, ResponseCache } from '../src/cache/index.ts';
import { cacheClear, cacheList, cachePrune, cacheShow, cacheStats } from '../src/commands/cache.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { FakeClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';

const DAY = 86_400_000;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function setup(isTTY = false) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
  dirs.push(root);
  const home = path.join(root, 'home');
  const clock = new FakeClock();
  const io = { ...memoryIo(), isTTY };
  const ctx: CommandContext = { home, cwd: root, env: {}, io, clock, verbose: false };
  const open = (settings: Partial<CacheSettings> = {}): ResponseCache =>
    ResponseCache.open(
      path.join(home, 'cache.db'),
      { ttlMs: DAY, jitter: 0, compressThresholdBytes: 1024, ...settings },
      { clock, random: seededRandom(1) },
    );
  const stdoutJson = (): Record<string, unknown> => {
    assert.equal(io.stdout.length, 1, 'exactly one write to stdout');
    return JSON.parse(io.stdout[0] ?? '') as Record<string, unknown>;
  };
  const keys = (): string[] => {
    const db = new Database(path.join(home, 'cache.db'), { readonly: true });
    try {
      return (db.prepare('SELECT key FROM responses ORDER BY key').all() as { key: string }[]).map(
        (r) => r.key,
      );
    } finally {
      db.close();
    }
  };
  return { home, clock, io, ctx, open, stdoutJson, keys };
}

const big = JSON.stringify({
  word: '사과',
  examples: Array.from({ length: 60 }, (_, i) => `사과 ${i}: I like apples.`),
});
const key = (c: string): string => c.repeat(64);

describe('cache stats', () => {
  test('reports zeros without creating the data directory when there is no cache', async () => {
    const { ctx, home, stdoutJson } = setup();
    assert.equal(await cacheStats(ctx, { json: true }), 0);
    const s = stdoutJson();
    assert.deepEqual(
      [s['entries'], s['live'], s['expired'], s['originalBytes'], s['storedBytes'], s['compressionRatio']],
      [0, 0, 0, 0, 0, 0],
    );
    assert.deepEqual([s['hits'], s['misses'], s['oldest'], s['newest']], [0, 0, null, null]);
    assert.deepEqual([s['perModel'], s['recentRuns']], [{}, []]);
    assert.equal(fs.existsSync(home), false);
  });

  test('--json counts entries, live and expired, bytes, runs and models exactly', async () => {
    const { ctx, clock, open, stdoutJson, home } = setup();
    const cache = open();
    const t0 = clock.now();
    await cache.put(key('a'), { body: big, model: 'gpt-4o', term: '사과' });
    await clock.advance(2 * DAY);
    await cache.put(key('b'), { body: '{"word":"배"}', model: 'gpt-4o', term: '배' });
    await cache.put(key('c'), { body: big, model: 'mini', term: '사과' });
    await cache.recordRun({ runId: 'run-1', startedAt: t0, hits: 3, misses: 1, model: 'gpt-4o' });
    await cache.recordRun({ runId: 'run-2', startedAt: t0 + 1000, hits: 2, misses: 0, model: 'mini' });
    await cache.close();
    const bigBytes = Buffer.byteLength(big);
    const db = new Database(path.join(home, 'cache.db'), { readonly: true });
    const bigStored = (
      db.prepare('SELECT stored_bytes AS n FROM responses WHERE key = ?').get(key('a')) as { n: number }
    ).n;
    db.close();

    assert.equal(await cacheStats(ctx, { json: true }), 0);
    const s = stdoutJson();
    const original = 2 * bigBytes + 14;
    const stored = 2 * bigStored + 14;
    assert.deepEqual(
      {
        entries: s['entries'],
        live: s['live'],
        expired: s['expired'],
        originalBytes: s['originalBytes'],
        storedBytes: s['storedBytes'],
        compressionRatio: s['compressionRatio'],
        hits: s['hits'],
        misses: s['misses'],
        oldest: s['oldest'],
        newest: s['newest'],
        perModel: s['perModel'],
        perCodec: s['perCodec'],
      },
      {
        entries: 3,
        live: 2,
        expired: 1,
        originalBytes: original,
        storedBytes: stored,
        compressionRatio: original / stored,
        hits: 5,
        misses: 1,
        oldest: '2026-01-01T00:00:00.000Z',
        newest: '2026-01-03T00:00:00.000Z',
        perModel: {
          'gpt-4o': {
            entries: 2,
            live: 1,
            expired: 1,
            originalBytes: bigBytes + 14,
            storedBytes: bigStored + 14,
          },
          mini: { entries: 1, live: 1, expired: 0, originalBytes: bigBytes, storedBytes: bigStored },
        },
        perCodec: { deflate: 2, identity: 1 },
      },
    );
    assert.deepEqual(s['recentRuns'], [
      { runId: 'run-2', startedAt: '2026-01-01T00:00:01.000Z', hits: 2, misses: 0, model: 'mini' },
      { runId: 'run-1', startedAt: '2026-01-01T00:00:00.000Z', hits: 3, misses: 1, model: 'gpt-4o' },
    ]);
    assert.ok(bigStored < bigBytes / 2);
  });

  test('without --json writes a summary to stdout and nothing to stderr', async () => {
    const { ctx, io, open } = setup();
    open().close();
    assert.equal(await cacheStats(ctx, {}), 0);
    assert.deepEqual(io.stderr, []);
    assert.match(io.stdout.join(''), /entries {3}0 \(0 live, 0 expired\)/);
  });
});

describe('cache list', () => {
  test('--json lists the newest entries first, up to --limit', async () => {
    const { ctx, clock, open, stdoutJson } = setup();
    const cache = open({ ttlMs: 0 });
    for (const c of ['a', 'b', 'c']) {
      await cache.put(key(c), { body: c, model: 'm', term: `term-${c}`, stage: 'card' });
      await clock.advance(1000);
    }
    await cache.close();
    assert.equal(await cacheList(ctx, { limit: '2', json: true }), 0);
    assert.deepEqual(stdoutJson(), {
      entries: [
        {
          key: key('c'),
          model: 'm',
          term: 'term-c',
          stage: 'card',
          codec: 'identity',
          originalBytes: 1,
          storedBytes: 1,
          createdAt: '2026-01-01T00:00:02.000Z',
          expiresAt: null,
          expired: false,
        },
        {
          key: key('b'),
          model: 'm',
          term: 'term-b',
          stage: 'card',
          codec: 'identity',
          originalBytes: 1,
          storedBytes: 1,
          createdAt: '2026-01-01T00:00:01.000Z',
          expiresAt: null,
          expired: false,
        },
      ],
    });
  });

  test('rejects a --limit that is not a positive integer', async () => {
    const { ctx } = setup();
    await assert.rejects(cacheList(ctx, { limit: '0' }), {
      exitCode: 2,
      message: '--limit must be an integer >= 1, got "0"',
    });
  });
});

describe('cache show', () => {
  const abc1 = `abc1${'0'.repeat(60)}`;
  const abc2 = `abc2${'0'.repeat(60)}`;

  test('prints the decoded response of the one entry whose key starts with the prefix', async () => {
    const { ctx, io, open } = setup();
    const cache = open();
    await cache.put(abc1, { body: big, model: 'm', term: '사과' });
    await cache.put(abc2, { body: '{}', model: 'm' });
    await cache.close();
    assert.equal(await cacheShow(ctx, { prefix: 'ABC1' }), 0);
    assert.deepEqual(io.stdout, [`${JSON.stringify(JSON.parse(big), null, 2)}\n`]);
    assert.match(io.stderr.join(''), /term {5}사과/);
  });

  test('--json gives the exact body and the entry metadata', async () => {
    const { ctx, open, stdoutJson } = setup();
    const cache = open();
    await cache.put(abc1, { body: big, model: 'm' });
    await cache.close();
    assert.equal(await cacheShow(ctx, { prefix: 'abc', json: true }), 0);
    const shown = stdoutJson();
    assert.equal(shown['body'], big);
    assert.equal(shown['key'], abc1);
    assert.equal(shown['codec'], 'deflate');
  });

  test('fails with exit 2 for an unknown, an ambiguous or a non-hex prefix', async () => {
    const { ctx, open } = setup();
    const cache = open();
    await cache.put(abc1, { body: '1', model: 'm' });
    await cache.put(abc2, { body: '2', model: 'm' });
    await cache.close();
    await assert.rejects(cacheShow(ctx, { prefix: 'abd' }), {
      exitCode: 2,
      message: /no cached response has a key starting with "abd"/,
    });
    await assert.rejects(cacheShow(ctx, { prefix: 'abc' }), {
      exitCode: 2,
      message: 'key prefix "abc" is ambiguous: it matches abc100000, abc200000',
    });
    await assert.rejects(cacheShow(ctx, { prefix: 'xyz' }), { exitCode: 2 });
  });
});

describe('cache clear', () => {
  async function populated() {
    const env = setup();
    const cache = env.open({ ttlMs: 0 });
    await cache.put(key('1'), { body: 'old gpt', model: 'gpt-4o' });
    await cache.put(key('2'), { body: 'old mini', model: 'mini' });
    await env.clock.advance(40 * DAY);
    await cache.put(key('3'), { body: 'new gpt', model: 'gpt-4o' });
    await cache.put(key('4'), { body: 'new mini', model: 'mini' });
    await cache.close();
    return env;
  }

  test('--yes --model deletes only that model', async () => {
    const { ctx, keys, stdoutJson } = await populated();
    assert.equal(await cacheClear(ctx, { yes: true, model: 'gpt-4o', json: true }), 0);
    assert.equal(stdoutJson()['deleted'], 2);
    assert.deepEqual(keys(), [key('2'), key('4')]);
  });

  test('--yes --older-than deletes only entries created longer ago than that', async () => {
    const { ctx, keys } = await populated();
    assert.equal(await cacheClear(ctx, { yes: true, olderThan: '30d' }), 0);
    assert.deepEqual(keys(), [key('3'), key('4')]);
  });

  test('--yes with --model and --older-than deletes only entries matching both', async () => {
    const { ctx, keys, io } = await populated();
    assert.equal(await cacheClear(ctx, { yes: true, model: 'mini', olderThan: '30' }), 0);
    assert.deepEqual(keys(), [key('1'), key('3'), key('4')]);
    assert.match(io.stderr.join(''), /^deleted 1 cached response for model mini older than 30 /);
  });

  test('refuses with exit 2 and deletes nothing without --yes when there is no terminal', async () => {
    const { ctx, keys } = await populated();
    await assert.rejects(cacheClear(ctx, {}), { exitCode: 2, message: /pass --yes/ });
    assert.equal(keys().length, 4);
  });

  test('asks on a terminal and deletes only after a yes', async () => {
    const { home, clock } = await populated();
    const tty = setup(true);
    const ctx = { ...tty.ctx, home, clock };
    const asked: string[] = [];
    const answer = (yes: boolean) => async (message: string) => {
      asked.push(message);
      return yes;
    };
    assert.equal(await cacheClear(ctx, { model: 'mini', confirm: answer(false) }), 0);
    assert.equal(await cacheClear(ctx, { model: 'mini', confirm: answer(true) }), 0);
    assert.deepEqual(asked, [
      'Delete 2 cached responses for model mini?',
      'Delete 2 cached responses for model mini?',
    ]);
    assert.deepEqual(tty.io.stderr[0], 'nothing deleted\n');
    const db = new Database(path.join(home, 'cache.db'), { readonly: true });
    assert.deepEqual(db.prepare('SELECT DISTINCT model FROM responses').all(), [{ model: 'gpt-4o' }]);
    db.close();
  });

  test('rejects a malformed --older-than', async () => {
    const { ctx } = await populated();
    await assert.rejects(cacheClear(ctx, { yes: true, olderThan: 'a month' }), {
      exitCode: 2,
      message: /--older-than must be a duration/,
    });
  });
});

describe('cache prune', () => {
  test('deletes only expired entries, in batches, and keeps live and never-expiring ones', async () => {
    const { ctx, clock, open, keys, stdoutJson } = setup();
    const shortLived = open({ ttlMs: 1000 });
    for (let i = 0; i < 1203; i++)
      await shortLived.put(`expired-${String(i).padStart(4, '0')}`, { body: big, model: 'm' });
    await shortLived.close();
    await clock.advance(1000);
    const cache = open({ ttlMs: 0 });
    await cache.put('forever', { body: 'x', model: 'm' });
    await cache.close();
    const live = open({ ttlMs: DAY });
    await live.put('live', { body: 'y', model: 'm' });
    await live.close();

    assert.equal(await cachePrune(ctx, { json: true }), 0);
    const result = stdoutJson();
    assert.equal(result['deleted'], 1203);
    assert.equal(result['originalBytes'], 1203 * Buffer.byteLength(big));
    assert.ok((result['fileBytesAfter'] as number) < (result['fileBytesBefore'] as number));
    assert.deepEqual(keys(), ['forever', 'live']);
  });

  test('on a missing cache reports nothing freed and creates nothing', async () => {
    const { ctx, home, io } = setup();
    assert.equal(await cachePrune(ctx, {}), 0);
    assert.equal(fs.existsSync(home), false);
    assert.deepEqual(io.stderr, ['no expired entries; file 0 B → 0 B\n']);
  });
});
