import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { OutboxResults } from '../src/batch/outbox.ts';
import { openSqliteBatchStores } from '../src/batch/sqlite-stores.ts';
import type { BatchResults, BatchStores } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { type StoreHealth, storeUnavailable } from '../src/store/health.ts';
import { meta, outcome, STAGES, T0 } from './conformance/batch-fixtures.ts';

/** A store whose presence the test switches: away, every call fails as a guarded Redis call does. */
class SwitchedHealth implements StoreHealth {
  away = false;
  awaySince: number | undefined;
  lost = undefined;
  where = 'redis://test/0';
  #listeners: ((c: 'away' | 'back' | 'lost') => void)[] = [];
  back = () => Promise.resolve();
  onChange(l: (c: 'away' | 'back' | 'lost') => void): void {
    this.#listeners.push(l);
  }
  set(away: boolean): void {
    this.away = away;
    this.awaySince = away ? T0 : undefined;
    for (const l of this.#listeners) l(away ? 'away' : 'back');
  }
}

/** The results store as the guard presents it: each call fails while the health says away. */
function guardedBy(health: SwitchedHealth, inner: BatchResults): BatchResults {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (health.away) return Promise.reject(storeUnavailable(health.where, 'test: away'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('the outbox', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-outbox-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;

  async function setup(items = 4): Promise<{ stores: BatchStores; file: string; health: SwitchedHealth }> {
    const clock = new FakeClock(T0);
    const db = openDatabase(join(dir, `state-${++n}.db`));
    const stores = openSqliteBatchStores(db, clock);
    await stores.catalog.create(meta('b1'), 'loader');
    await stores.catalog.insertItems(
      'b1',
      Array.from({ length: items }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
      STAGES,
    );
    await stores.catalog.finishLoading('b1', items);
    await stores.queue.claim('b1', 'A', 60_000, items);
    return { stores, file: join(dir, `outbox-${n}.db`), health: new SwitchedHealth() };
  }

  test('with the store there, outcomes go straight through and nothing is kept', async () => {
    const { stores, file, health } = await setup();
    const outbox = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health,
    });
    await outbox.completeJob(outcome('b1', 0, 'analyze'), { a: 1 }, false);
    assert.equal(outbox.pending, 0);
    assert.deepEqual(await outbox.results('b1', 0), { analyze: { a: 1 } });
    outbox.close();
  });

  test('away: outcomes are kept on disk; back: written through, in order, before any read', async () => {
    const { stores, file, health } = await setup();
    const outbox = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health,
    });
    health.set(true);
    await outbox.completeJob(outcome('b1', 0, 'analyze'), { a: 0 }, false);
    await outbox.completeJob(outcome('b1', 0, 'cards'), { c: 0 }, true);
    await outbox.failJob(outcome('b1', 1, 'analyze'), 'server', 'HTTP 500');
    assert.equal(outbox.pending, 3);
    // A read while away fails as the store does: the runner waits for the store.
    await assert.rejects(outbox.counts('b1'), /does not answer/);
    // flush() keeps them safe instead of failing the run.
    await outbox.flush();
    assert.equal(outbox.pending, 3);
    health.away = false;
    health.awaySince = undefined;
    const counts = await outbox.counts('b1');
    assert.equal(outbox.pending, 0);
    assert.equal(counts.done, 1);
    assert.equal(counts.failed, 1);
    assert.deepEqual(await outbox.results('b1', 0), { analyze: { a: 0 }, cards: { c: 0 } });
    outbox.close();
  });

  test('the store coming back writes the kept outcomes through by itself', async () => {
    const { stores, file, health } = await setup();
    const outbox = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health,
    });
    health.set(true);
    await outbox.completeJob(outcome('b1', 2, 'analyze'), { a: 2 }, false);
    health.set(false);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(outbox.pending, 0);
    assert.deepEqual(await stores.results.results('b1', 2), { analyze: { a: 2 } });
    outbox.close();
  });

  test('a run that gave up leaves them in outbox.db; the next run on the same store writes them first', async () => {
    const { stores, file, health } = await setup();
    const first = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health,
    });
    health.set(true);
    await first.completeJob(outcome('b1', 3, 'analyze'), { a: 3 }, false);
    first.close();

    const healthy = new SwitchedHealth();
    const next = new OutboxResults(guardedBy(healthy, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health: healthy,
    });
    assert.equal(next.pending, 1);
    await next.flush();
    assert.equal(next.pending, 0);
    assert.deepEqual(await stores.results.results('b1', 3), { analyze: { a: 3 } });
    next.close();
  });

  test('entries of a store that has since lost its state (another epoch) are dropped; other stores’ kept', async () => {
    const { stores, file, health } = await setup();
    health.set(true);
    const old = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 's',
      epoch: 'e1',
      health,
    });
    await old.completeJob(outcome('b1', 0, 'analyze'), { a: 0 }, false);
    old.close();
    const other = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 'other',
      epoch: 'x',
      health,
    });
    await other.completeJob(outcome('b1', 1, 'analyze'), { a: 1 }, false);
    other.close();

    const healthy = new SwitchedHealth();
    const next = new OutboxResults(stores.results, { file, storeId: 's', epoch: 'e2', health: healthy });
    assert.equal(next.pending, 0);
    next.close();
    const stillThere = new OutboxResults(guardedBy(health, stores.results), {
      file,
      storeId: 'other',
      epoch: 'x',
      health,
    });
    assert.equal(stillThere.pending, 1);
    stillThere.close();
  });
});
