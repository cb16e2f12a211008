import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import zlib from 'node:zlib';
import Database from 'better-sqlite3';
import { type CacheSettings, type CodecName, ResponseCache } from '../src/cache/index.ts';
import { FakeClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';

const DAY = 86_400_000;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
  dirs.push(dir);
  return path.join(dir, 'cache.db');
}

const defaults: CacheSettings = { ttlMs: 30 * DAY, jitter: 0.1, compressThresholdBytes: 1024 };

function openCache(settings: Partial<CacheSettings> = {}, file = tempFile(), clock = new FakeClock()) {
  const cache = ResponseCache.open(file, { ...defaults, ...settings }, { clock, random: seededRandom(42) });
  return { cache, clock, file };
}

/** Reads a row's storage columns straight from SQLite, bypassing the cache. */
function storedRow(file: string, key: string) {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare(
        'SELECT codec, original_bytes AS originalBytes, stored_bytes AS storedBytes, length(body) AS bodyLength FROM responses WHERE key = ?',
      )
      .get(key) as { codec: string; originalBytes: number; storedBytes: number; bodyLength: number };
  } finally {
    db.close();
  }
}

/** ~3 KB of card JSON with Korean, English and emoji: what real bodies look like. */
const cardJson = JSON.stringify({
  word: '사과',
  romanization: 'sagwa',
  meanings: ['apple', 'apology (사과하다: to apologise)'],
  examples: Array.from({ length: 12 }, (_, i) => ({
    ko: `저는 아침마다 사과를 ${i + 1}개 먹어요. 🍎`,
    en: `I eat ${i + 1} apple(s) every morning.`,
    note: '“사과” is both the fruit and an apology; context decides.',
  })),
});

describe('ResponseCache expiry', () => {
  test('spreads expiry over [ttl, ttl x 1.1] across 10,000 entries, every tenth of the range used', async () => {
    const { cache, clock } = openCache();
    const start = clock.now();
    const deciles = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      await cache.put(`k${i}`, { body: 'x', model: 'm' });
      const hit = await cache.get(`k${i}`);
      const lifetime = (hit?.expiresAt ?? Number.NaN) - start;
      assert.ok(lifetime >= 30 * DAY && lifetime <= 33 * DAY, `lifetime ${lifetime} out of range`);
      const decile = Math.min(9, Math.floor((lifetime - 30 * DAY) / (0.3 * DAY)));
      deciles[decile] = (deciles[decile] ?? 0) + 1;
    }
    await cache.close();
    // Uniform would be 1,000 per tenth; a seeded run stays well inside 800..1,200.
    for (const n of deciles) assert.ok(n > 800 && n < 1200, `deciles ${deciles.join(',')}`);
  });

  test('misses once an entry expires, and still serves it flagged stale when allowStale', async () => {
    const { cache, clock } = openCache({ ttlMs: 1000, jitter: 0 });
    await cache.put('k', { body: '{"word":"사과"}', model: 'm' });
    await clock.advance(999);
    assert.deepEqual(await cache.get('k'), {
      body: '{"word":"사과"}',
      stale: false,
      createdAt: clock.now() - 999,
      expiresAt: clock.now() + 1,
      model: 'm',
    });
    await clock.advance(1);
    assert.equal(await cache.get('k'), undefined);
    assert.equal((await cache.get('k', { allowStale: true }))?.stale, true);
    assert.equal((await cache.get('k', { allowStale: true }))?.body, '{"word":"사과"}');
    await cache.close();
  });

  test('never expires an entry written with ttl 0', async () => {
    const { cache, clock } = openCache({ ttlMs: 0 });
    await cache.put('k', { body: 'forever', model: 'm' });
    await clock.advance(10 * 365 * DAY);
    assert.deepEqual(await cache.get('k'), {
      body: 'forever',
      stale: false,
      createdAt: clock.now() - 3650 * DAY,
      expiresAt: null,
      model: 'm',
    });
    await cache.close();
  });

  test('a second put of the same key replaces the body and restarts the lifetime', async () => {
    const { cache, clock } = openCache({ ttlMs: 1000, jitter: 0 });
    await cache.put('k', { body: 'old', model: 'm' });
    await clock.advance(1500);
    await cache.put('k', { body: 'new', model: 'm2' });
    assert.deepEqual(await cache.get('k'), {
      body: 'new',
      stale: false,
      createdAt: clock.now(),
      expiresAt: clock.now() + 1000,
      model: 'm2',
    });
    await cache.close();
  });

  test('misses a key that was never stored', async () => {
    const { cache } = openCache();
    assert.equal(await cache.get('nope'), undefined);
    assert.equal(await cache.get('nope', { allowStale: true }), undefined);
    await cache.close();
  });
});

describe('ResponseCache compression', () => {
  for (const codec of ['zstd', 'br', 'deflate', 'identity'] as const) {
    test(`round-trips card JSON byte for byte with ${codec} and records both sizes`, async () => {
      const { cache, file } = openCache({ codec });
      await cache.put('k', { body: cardJson, model: 'm' });
      assert.equal((await cache.get('k'))?.body, cardJson);
      await cache.close();
      const row = storedRow(file, 'k');
      assert.equal(row.codec, codec);
      assert.equal(row.originalBytes, Buffer.byteLength(cardJson));
      assert.equal(row.storedBytes, row.bodyLength);
      if (codec === 'identity') assert.equal(row.storedBytes, row.originalBytes);
      else
        assert.ok(
          row.storedBytes < row.originalBytes / 2,
          `${codec} stored ${row.storedBytes} of ${row.originalBytes}`,
        );
    });
  }

  test('stores bodies at or below the threshold uncompressed', async () => {
    const { cache, file } = openCache({ compressThresholdBytes: 1024 });
    const small = '가'.repeat(341) + 'a'; // 3 x 341 + 1 = 1024 bytes
    await cache.put('small', { body: small, model: 'm' });
    await cache.put('large', { body: `${small}b`, model: 'm' });
    assert.equal((await cache.get('small'))?.body, small);
    await cache.close();
    assert.deepEqual(storedRow(file, 'small'), {
      codec: 'identity',
      originalBytes: 1024,
      storedBytes: 1024,
      bodyLength: 1024,
    });
    assert.equal(storedRow(file, 'large').codec, 'deflate');
  });

  test('stores a body as identity when compressing would not make it smaller', async () => {
    const { cache, file } = openCache({ compressThresholdBytes: 0 });
    await cache.put('k', { body: '사과', model: 'm' });
    assert.equal((await cache.get('k'))?.body, '사과');
    await cache.close();
    assert.deepEqual(storedRow(file, 'k'), {
      codec: 'identity',
      originalBytes: 6,
      storedBytes: 6,
      bodyLength: 6,
    });
  });

  test('reads rows written with a codec other than the current default', async () => {
    const { cache, file } = openCache({ codec: 'zstd' });
    await cache.close();
    const raw = Buffer.from(cardJson, 'utf8');
    const encoded: Record<CodecName, Buffer> = {
      identity: raw,
      br: zlib.brotliCompressSync(raw),
      deflate: zlib.deflateRawSync(raw),
      zstd: zlib.zstdCompressSync(raw),
    };
    const db = new Database(file);
    const insert = db.prepare(
      `INSERT INTO responses (key, model, codec, body, original_bytes, stored_bytes, created_at, expires_at)
       VALUES (?, 'old-model', ?, ?, ?, ?, 0, NULL)`,
    );
    for (const [name, body] of Object.entries(encoded)) insert.run(name, name, body, raw.length, body.length);
    db.close();
    const reopened = openCache({ codec: 'deflate' }, file).cache;
    for (const name of Object.keys(encoded)) assert.equal((await reopened.get(name))?.body, cardJson, name);
    await reopened.close();
  });

  test('treats a row in an unknown codec or with a corrupt body as a miss', async () => {
    const { cache, file } = openCache();
    await cache.close();
    const db = new Database(file);
    db.prepare(
      `INSERT INTO responses (key, model, codec, body, original_bytes, stored_bytes, created_at) VALUES
       ('lz4', 'm', 'lz4', x'00', 1, 1, 0), ('bad', 'm', 'zstd', x'0102030405', 5, 5, 0)`,
    ).run();
    db.close();
    const reopened = openCache({}, file).cache;
    assert.equal(await reopened.get('lz4'), undefined);
    assert.equal(await reopened.get('bad'), undefined);
    await reopened.close();
  });
});

describe('ResponseCache settings and runs', () => {
  test('rejects a negative ttl, naming the value, before creating a file', async () => {
    const file = tempFile();
    assert.throws(() => openCache({ ttlMs: -1 }, file), {
      kind: 'config',
      message: 'cache ttl must be a duration >= 0 (0 = never expires), got -1',
    });
    assert.equal(fs.existsSync(file), false);
  });

  test('recordRun stores absolute totals, so repeated calls for one run overwrite', async () => {
    const { cache, file } = openCache();
    await cache.recordRun({ runId: 'r1', startedAt: 5, hits: 1, misses: 2, model: 'm' });
    await cache.recordRun({ runId: 'r1', startedAt: 5, hits: 10, misses: 3, model: 'm' });
    await cache.close();
    const db = new Database(file, { readonly: true });
    assert.deepEqual(db.prepare('SELECT * FROM cache_runs').all(), [
      { run_id: 'r1', started_at: 5, hits: 10, misses: 3, model: 'm' },
    ]);
    db.close();
  });

  test('creates the file in WAL mode with incremental auto-vacuum', async () => {
    const { cache, file } = openCache();
    await cache.close();
    const db = new Database(file, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('auto_vacuum', { simple: true }), 2);
    db.close();
  });
});
