import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { composeRun } from '../src/batch/compose.ts';
import { ConcurrencyController } from '../src/batch/concurrency.ts';
import { runBatch } from '../src/batch/runner.ts';
import type { BatchMeta } from '../src/batch/store.ts';
import { createMockFetch } from '../src/client/mock-fetch.ts';
import { fetchTransport } from '../src/client/transport.ts';
import { loadSettings } from '../src/config/index.ts';
import { systemClock } from '../src/core/clock.ts';
import { ExitCode, isFlashcardsError, storageError } from '../src/core/errors.ts';
import { seededRandom } from '../src/core/random.ts';
import { databaseError } from '../src/db/open.ts';
import { loadPipeline } from '../src/pipeline/registry.ts';
import { sqliteState } from '../src/store/sqlite-state.ts';
import { openJsonLog } from '../src/ui/json-log.ts';
import { tempDir } from './support/cli.ts';
import { stateDbs } from './support/state-db.ts';

/** What SQLite and Node's fs throw, reduced to what the classifier reads. */
function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('storageError: a full or failing disk is named as such, not as a bug', () => {
  test('SQLite and fs spellings of a full disk stop the run (exit 3) with a hint', () => {
    for (const e of [
      failure('SQLITE_FULL', 'database or disk is full'),
      failure('ENOSPC', 'no space left on device, write'),
      failure('EDQUOT', 'disk quota exceeded'),
    ]) {
      const err = storageError(e, '/data/state.db');
      assert.ok(err);
      assert.match(err.message, /^\/data\/state\.db: the disk is full \(/);
      assert.equal(err.exitCode, ExitCode.aborted);
      assert.match(err.hint ?? '', /free some space/);
    }
  });

  test('read-only and failing disks have their own messages; anything else is not a storage error', () => {
    assert.match(storageError(failure('EROFS', 'read-only file system'))?.message ?? '', /read-only/);
    assert.match(storageError(failure('SQLITE_READONLY_DBMOVED', 'moved'))?.message ?? '', /read-only/);
    assert.match(
      storageError(failure('SQLITE_IOERR_WRITE', 'disk I/O error'))?.message ?? '',
      /failed a read or write/,
    );
    assert.equal(storageError(failure('SQLITE_CONSTRAINT', 'UNIQUE constraint failed')), undefined);
    assert.equal(storageError(new Error('plain')), undefined);
  });

  test('databaseError names the file of a full database', () => {
    const err = databaseError('/data/cache.db', failure('SQLITE_FULL', 'database or disk is full'));
    assert.match(err.message, /^\/data\/cache\.db: the disk is full/);
    assert.equal(err.exitCode, ExitCode.aborted);
  });
});

describe('the run log on a full disk', { skip: existsSync('/dev/full') ? false : 'no /dev/full' }, () => {
  test('a failed write is reported once and never thrown, from a timer or from emit', () => {
    const dir = join(tempDir('fc-log-'), 'logs');
    mkdirSync(dir);
    const at = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    // The log's own file name, pointing at a device whose every write fails with ENOSPC.
    symlinkSync('/dev/full', join(dir, '2026-01-02T03-04-05-006Z-run1.jsonl'));
    const errors: unknown[] = [];
    const log = openJsonLog(
      dir,
      () => at,
      'run1',
      (e) => errors.push(e),
    );
    for (let i = 0; i < 3; i++) {
      log.emit({ type: 'run_finished', batchId: 'b', status: 'done', exitCode: 0, durationMs: 1 });
    }
    log.close();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, 'ENOSPC');
  });
});

describe('runBatch when state.db cannot grow', () => {
  const dbs = stateDbs();

  test('the run stops with the disk-full error, and nothing escapes uncaught', async () => {
    const cwd = tempDir('fc-full-');
    const { settings } = await loadSettings({ cwd, env: { HOME: cwd }, flags: { provider: 'mock' } });
    const pipeline = loadPipeline('vocabulary', cwd, settings);
    const { db, catalog, queue, results } = dbs.openStores(dbs.tempDb(), systemClock);
    const meta: BatchMeta = {
      id: 'full1',
      inputName: 'words.txt',
      inputDigest: 'digest',
      settingsHash: 'settings',
      pipeline: pipeline.name,
      stages: pipeline.stages.map((s) => s.name),
      model: settings.model,
      baseUrl: settings.baseUrl,
      outputPath: null,
      format: 'anki',
      settings: {},
    };
    await catalog.create(meta, 'me');
    const items = Array.from({ length: 40 }, (_, idx) => ({
      idx,
      term: `단어${idx}`,
      line: idx + 1,
      context: {},
    }));
    await catalog.insertItems(meta.id, items, meta.stages);
    await catalog.finishLoading(meta.id, items.length);
    const batch = await catalog.get(meta.id);
    assert.ok(batch);
    const running = new AbortController();
    const composed = composeRun({
      state: sqliteState(db, 'state.db', systemClock, join(cwd, 'cache.db')),
      settings: { ...settings, cache: { ...settings.cache, enabled: false } },
      batchId: meta.id,
      owner: 'me',
      refresh: false,
      transport: fetchTransport(createMockFetch()),
      events: { emit: () => {} },
      signals: { signal: running.signal, stopSignal: running.signal, dispose: () => {} },
      deadlineMs: undefined,
      clock: systemClock,
      random: seededRandom(1),
    });
    const { job } = composed;
    // No more pages for this connection: the first results that need one fail with SQLITE_FULL.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    await assert.rejects(
      runBatch({
        batch,
        queue,
        results,
        pipeline,
        job,
        owner: 'me',
        concurrency: new ConcurrencyController({ fixed: 4, initial: 4, max: 4 }, systemClock),
        allowedRate: composed.allowedRate,
        clock: systemClock,
        events: { emit: () => {} },
      }),
      (e: unknown) => {
        assert.ok(isFlashcardsError(e), `a FlashcardsError, not ${String(e)}`);
        assert.match(e.message, /state\.db: the disk is full/);
        assert.equal(e.exitCode, ExitCode.aborted);
        return true;
      },
    );
    // Room again: what was committed before the disk filled up is there, and the rest is pending.
    db.pragma('max_page_count = 1073741823');
    const counts = await results.counts(meta.id);
    assert.equal(counts.total, items.length);
    assert.ok(counts.pending > 0);
  });
});
