import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openSqliteBatchStores } from '../src/batch/sqlite-stores.ts';
import type { BatchStores } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import { GROUP_COMMIT_MS } from '../src/db/write-behind.ts';
import { batchCatalogConformance } from './conformance/batch-catalog.ts';
import { collect, meta, outcome, STAGES, T0 } from './conformance/batch-fixtures.ts';
import { batchResultsConformance } from './conformance/batch-results.ts';
import { workQueueConformance } from './conformance/work-queue.ts';
import { stateDbs } from './support/state-db.ts';

/** A state.db in a temp dir per test; every connect() is its own connection, like another process. */
async function openSqlite(clock: FakeClock) {
  const dir = mkdtempSync(join(tmpdir(), 'fc-batch-'));
  const file = join(dir, 'state.db');
  const opened: { db: Db; stores: BatchStores }[] = [];
  return {
    async connect() {
      const db = openDatabase(file);
      const stores = openSqliteBatchStores(db, clock);
      opened.push({ db, stores });
      return stores;
    },
    async close() {
      for (const { db, stores } of opened) {
        await stores.results.flush();
        db.close();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

batchCatalogConformance('SQLite', openSqlite);
workQueueConformance('SQLite', openSqlite);
batchResultsConformance('SQLite', openSqlite);

const dbs = stateDbs();

/** A loaded batch of `n` items on a fresh state.db, and a second connection to it. */
async function loaded(n: number) {
  const file = dbs.tempDb();
  const clock = new FakeClock(T0);
  const a = dbs.openStores(file, clock);
  await a.catalog.create(meta('b1'), 'loader');
  await a.catalog.insertItems(
    'b1',
    Array.from({ length: n }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
    STAGES,
  );
  await a.catalog.finishLoading('b1', n);
  return { clock, a, b: dbs.openStores(file, clock) };
}

describe('SQLite batch stores', () => {
  test('job outcomes are committed GROUP_COMMIT_MS after the first of them, without an explicit flush', async () => {
    const { clock, a, b } = await loaded(1);
    await a.queue.claim('b1', 'A', 60_000, 1);
    await a.results.completeJob(outcome('b1', 0, 'analyze'), {}, false);
    await clock.advance(GROUP_COMMIT_MS - 1);
    await a.results.completeJob(outcome('b1', 0, 'cards'), {}, true);
    assert.equal(
      (await b.results.counts('b1')).done,
      0,
      'not committed yet: another connection does not see it',
    );
    await clock.advance(1);
    assert.equal(
      (await b.results.counts('b1')).done,
      1,
      'both outcomes committed together, one window after the first',
    );
  });

  test('a status change made after queued outcomes is committed after them', async () => {
    const { a, b } = await loaded(1);
    await a.queue.claim('b1', 'A', 60_000, 1);
    await a.results.completeJob(outcome('b1', 0, 'analyze'), {}, false);
    await a.results.completeJob(outcome('b1', 0, 'cards'), {}, true);
    await a.catalog.setStatus('b1', 'done');
    assert.equal((await b.catalog.get('b1'))?.status, 'done');
    assert.equal((await b.results.counts('b1')).done, 1, 'the outcomes went first');
  });

  test('delete removes the batch’s rows in every table', async () => {
    const { a } = await loaded(3);
    await a.queue.joinRun('b1', 'A', { exclusive: false, aliveMs: 1000 });
    await a.catalog.delete('b1');
    for (const table of ['items', 'jobs', 'runs']) {
      const n = a.db.prepare(`SELECT count(*) FROM ${table} WHERE batch_id = ?`).pluck().get('b1');
      assert.equal(n, 0, table);
    }
  });

  test('requeueFailed puts the failed jobs back to pending, errors cleared, and leaves done jobs alone', async () => {
    const { a } = await loaded(3);
    const id = 'b1';
    await a.queue.claim(id, 'A', 60_000, 3);
    await a.results.failJob(outcome(id, 0, 'analyze'), 'timeout', 'took too long');
    await a.results.completeJob(outcome(id, 1, 'analyze'), { meaning: 'one' }, false);
    await a.results.failJob(outcome(id, 1, 'cards'), 'invalid_response', 'bad JSON');
    await a.results.completeJob(outcome(id, 2, 'analyze'), {}, false);
    await a.results.completeJob(outcome(id, 2, 'cards'), {}, true);
    assert.equal(await a.results.requeueFailed(id), 2);
    const jobs = a.db
      .prepare('SELECT idx, stage, status, error FROM jobs WHERE batch_id = ? ORDER BY idx, stage')
      .all(id);
    assert.deepEqual(jobs, [
      { idx: 0, stage: 'analyze', status: 'pending', error: null },
      { idx: 0, stage: 'cards', status: 'pending', error: null },
      { idx: 1, stage: 'analyze', status: 'done', error: null },
      { idx: 1, stage: 'cards', status: 'pending', error: null },
      { idx: 2, stage: 'analyze', status: 'done', error: null },
      { idx: 2, stage: 'cards', status: 'done', error: null },
    ]);
  });

  test('a state.db written by release 0.1 opens with its batches, leases and results, and goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-batch-'));
    const file = join(dir, 'state.db');
    const old = openDatabase(file);
    // The schema and rows exactly as release 0.1 wrote them (batch migration 1 only).
    old.exec(`
      CREATE TABLE schema_migrations (module TEXT PRIMARY KEY, version INTEGER NOT NULL);
      INSERT INTO schema_migrations VALUES ('batch', 1);
      CREATE TABLE batches (
        id TEXT PRIMARY KEY, input_name TEXT NOT NULL, input_digest TEXT NOT NULL, settings_hash TEXT NOT NULL,
        pipeline TEXT NOT NULL, stages TEXT NOT NULL, model TEXT NOT NULL, base_url TEXT NOT NULL, output_path TEXT,
        format TEXT NOT NULL, settings TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        status TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0, loader TEXT);
      CREATE TABLE runs (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE, owner TEXT NOT NULL,
        exclusive INTEGER NOT NULL, started_at INTEGER NOT NULL, alive_until INTEGER NOT NULL,
        PRIMARY KEY (batch_id, owner)) WITHOUT ROWID;
      CREATE TABLE items (
        batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE, idx INTEGER NOT NULL, data TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending', stage_done INTEGER NOT NULL DEFAULT 0, owner TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, error_kind TEXT, error TEXT,
        updated_at INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (batch_id, idx)) WITHOUT ROWID;
      CREATE INDEX items_by_status ON items (batch_id, status, idx);
      CREATE TABLE jobs (
        batch_id TEXT NOT NULL, idx INTEGER NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0, result TEXT, error_kind TEXT,
        error TEXT, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0, duration_ms INTEGER, finished_at INTEGER,
        PRIMARY KEY (batch_id, idx, stage),
        FOREIGN KEY (batch_id, idx) REFERENCES items(batch_id, idx) ON DELETE CASCADE);
      INSERT INTO batches VALUES ('old', 'words.txt', 'd', 's', 'vocabulary', '["analyze","cards"]', 'm',
        'http://x/v1', '/tmp/deck.tsv', 'anki', '{"deck":"D"}', 1000, 2000, 'interrupted', 3, NULL);
      INSERT INTO items VALUES ('old', 0, '{"term":"a","line":2,"context":{}}', 'done', 0, NULL, 0, 1, NULL, NULL, 1500);
      INSERT INTO items VALUES ('old', 1, '{"term":"b","line":3,"context":{}}', 'pending', 0, 'gone:1:x', 1600, 1, NULL, NULL, 1500);
      INSERT INTO items VALUES ('old', 2, '{"term":"c","line":4,"context":{}}', 'failed', 0, NULL, 0, 2, 'server', 'HTTP 500', 1500);
      INSERT INTO jobs VALUES ('old', 0, 'analyze', 'done', 1, 1, '{"n":0}', NULL, NULL, 10, 5, 0, 300, 1400);
      INSERT INTO jobs VALUES ('old', 0, 'cards', 'done', 1, 1, '{"c":0}', NULL, NULL, 10, 5, 0, 500, 1500);
      INSERT INTO jobs VALUES ('old', 1, 'analyze', 'done', 1, 1, '{"n":1}', NULL, NULL, 10, 5, 0, 400, 1500);
      INSERT INTO jobs (batch_id, idx, stage) VALUES ('old', 1, 'cards');
      INSERT INTO jobs VALUES ('old', 2, 'analyze', 'failed', 2, 2, NULL, 'server', 'HTTP 500', 0, 0, 0, 100, 1500);
      INSERT INTO jobs (batch_id, idx, stage) VALUES ('old', 2, 'cards');
    `);
    old.close();
    const db = openDatabase(file);
    try {
      const { catalog, queue, results } = openSqliteBatchStores(db, new FakeClock(T0));
      const [listed] = await catalog.overview();
      assert.deepEqual(
        listed && [
          listed.batch.id,
          listed.batch.status,
          listed.total,
          listed.done,
          listed.failed,
          listed.requests,
          listed.tokens,
        ],
        ['old', 'interrupted', 3, 1, 1, 5, 45],
      );
      assert.deepEqual(listed?.batch.settings, { deck: 'D' });
      assert.deepEqual(await catalog.requestTimes('old'), { p50: 400, p90: 500, p99: 500, max: 500 });
      assert.deepEqual(await results.failures('old', 10), [
        { item: 2, term: 'c', errorKind: 'server', message: 'HTTP 500' },
      ]);
      assert.deepEqual(
        (await collect(results.finishedItems('old'))).map((r) => [r.idx, r.results]),
        [[0, { analyze: { n: 0 }, cards: { c: 0 } }]],
      );
      // The lapsed lease of item 1 is claimed with the next token; its finished stage is still there.
      const [item] = await queue.claim('old', 'A', 60_000, 5);
      assert.deepEqual(item && [item.idx, item.term, item.attempts, item.token], [1, 'b', 2, 2]);
      assert.deepEqual(await results.results('old', 1), { analyze: { n: 1 } });
      await results.completeJob(outcome('old', 1, 'cards', { token: item!.token }), { c: 1 }, true);
      assert.deepEqual(await results.counts('old'), { total: 3, done: 2, failed: 1, pending: 0, leased: 0 });
      assert.equal(
        db.prepare("SELECT version FROM schema_migrations WHERE module = 'batch'").pluck().get(),
        2,
      );
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
