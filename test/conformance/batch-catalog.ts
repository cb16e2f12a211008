import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fixtures, meta, type OpenBatchBackend, outcome, STAGES, T0 } from './batch-fixtures.ts';

/**
 * The contract of `BatchCatalog`, for every backend: `open` gives a fresh, empty backend whose
 * time is `clock`. Exact assertions on fake time; nothing here waits on the real clock.
 */
export function batchCatalogConformance(label: string, open: OpenBatchBackend): void {
  describe(`BatchCatalog conformance: ${label}`, () => {
    const setup = fixtures(open);

    test('create reports whether this call made the batch; a loaded batch is running with its total', async () => {
      const { a, id } = await setup(3);
      assert.equal(await a.catalog.create(meta(id), 'someone-else'), false);
      const batch = await a.catalog.get(id);
      assert.equal(batch?.status, 'running');
      assert.equal(batch?.total, 3);
      assert.equal(batch?.loader, null);
      assert.deepEqual(batch?.stages, ['analyze', 'cards']);
      assert.deepEqual(batch?.settings, { model: 'test-model' });
      assert.deepEqual(await a.results.counts(id), { total: 3, done: 0, failed: 0, pending: 3, leased: 0 });
    });

    test('a batch reads back exactly as created, from another process too', async () => {
      const { a, connect, id } = await setup(2);
      const b = await connect();
      assert.deepEqual(await b.catalog.get(id), {
        ...meta(id),
        createdAt: T0,
        updatedAt: T0,
        status: 'running',
        total: 2,
        loader: null,
      });
      assert.deepEqual(await b.catalog.get(id), await a.catalog.get(id));
      assert.equal(await b.catalog.get('nope'), undefined);
    });

    test('two loaders racing: only the first create wins, and the batch stays loading until finished', async () => {
      const { a, connect } = await setup(0);
      const b = await connect();
      assert.equal(await a.catalog.create(meta('b2'), 'L1'), true);
      assert.equal(await b.catalog.create(meta('b2'), 'L2'), false);
      const loading = await b.catalog.get('b2');
      assert.equal(loading?.status, 'loading');
      assert.equal(loading?.loader, 'L1');
      await a.catalog.finishLoading('b2', 0);
      assert.equal((await b.catalog.get('b2'))?.status, 'running');
    });

    test('deleteLoading removes only a batch still loading under that loader', async () => {
      const { a, id } = await setup(1);
      await a.catalog.create(meta('b2'), 'L1');
      await a.catalog.deleteLoading('b2', 'L2');
      assert.equal((await a.catalog.get('b2'))?.loader, 'L1', 'another loader’s batch stays');
      await a.catalog.deleteLoading(id, 'loader');
      assert.equal((await a.catalog.get(id))?.status, 'running', 'a loaded batch stays');
      await a.catalog.deleteLoading('b2', 'L1');
      assert.equal(await a.catalog.get('b2'), undefined);
      // A load can start again under the same id.
      assert.equal(await a.catalog.create(meta('b2'), 'L3'), true);
    });

    test('overview lists every batch newest first with its counts and totals', async () => {
      const { a, id, clock } = await setup(3);
      await a.queue.claim(id, 'A', 60_000, 3);
      await a.results.completeJob(outcome(id, 0, 'analyze'), { a: 1 }, false);
      await a.results.completeJob(outcome(id, 0, 'cards'), { c: 1 }, true);
      await a.results.failJob(outcome(id, 1, 'analyze', { requests: 2 }), 'invalid_response', 'bad');
      await clock.advance(1000);
      assert.equal(await a.catalog.create(meta('b2'), 'loader'), true);
      await a.catalog.finishLoading('b2', 0);
      const all = await a.catalog.overview();
      assert.deepEqual(
        all.map((o) => [o.batch.id, o.total, o.done, o.failed, o.requests, o.tokens]),
        [
          ['b2', 0, 0, 0, 0, 0],
          [id, 3, 1, 1, 4, 45],
        ],
      );
      assert.deepEqual(
        all.map((o) => [o.promptTokens, o.completionTokens]),
        [
          [0, 0],
          [30, 15],
        ],
      );
      assert.deepEqual(all[1]?.batch, await a.catalog.get(id));
    });

    test('items come back exactly as loaded, whatever their text, in chunks', async () => {
      const { a } = await setup(0);
      await a.catalog.create(meta('b9'), 'loader');
      const odd = [
        '"quoted", comma',
        'tab\tand\nnewline',
        '사과 🍎',
        'back\\slash',
        '\u2028line sep',
        '\ud800',
      ];
      const items = odd.map((term, idx) => ({
        idx,
        term,
        line: idx + 2,
        context: { note: `${term}!`, empty: '' },
      }));
      await a.catalog.insertItems('b9', items.slice(0, 4), STAGES);
      await a.catalog.insertItems('b9', items.slice(4), STAGES);
      await a.catalog.finishLoading('b9', items.length);
      const claimed = await a.queue.claim('b9', 'A', 1000, 10);
      assert.deepEqual(
        claimed.map(({ attempts: _, token: __, ...rest }) => rest),
        items,
      );
      assert.equal((await a.results.counts('b9')).total, items.length);
      await assert.rejects(
        a.catalog.insertItems(
          'b9',
          [
            { idx: 20, term: 'x', line: 1, context: {} },
            { idx: 22, term: 'y', line: 2, context: {} },
          ],
          STAGES,
        ),
        /not consecutive/,
      );
    });

    test('delete removes the batch with its items, jobs, leases and runs', async () => {
      const { a, connect, id } = await setup(3);
      const b = await connect();
      await a.queue.claim(id, 'A', 60_000, 1);
      await a.results.completeJob(outcome(id, 0, 'analyze'), {}, false);
      assert.deepEqual(await a.queue.joinRun(id, 'A', { exclusive: false, aliveMs: 60_000 }), {
        joined: true,
      });
      await b.catalog.delete(id);
      assert.equal(await a.catalog.get(id), undefined);
      assert.deepEqual(await a.catalog.overview(), []);
      assert.deepEqual(await a.results.counts(id), { total: 0, done: 0, failed: 0, pending: 0, leased: 0 });
      assert.deepEqual(await a.results.results(id, 0), {});
      assert.deepEqual(await a.catalog.stageStats(id), []);
      assert.deepEqual(await a.queue.leaseOwners(id), []);
      // Made again under the same id, it starts empty: nothing of the old one is left behind.
      assert.equal(await a.catalog.create(meta(id), 'loader'), true);
      await a.catalog.finishLoading(id, 0);
      assert.deepEqual(await a.queue.joinRun(id, 'L', { exclusive: true, aliveMs: 1000 }), { joined: true });
    });

    test('status, output and settings changes are stored with the time of the change', async () => {
      const { a, connect, clock, id } = await setup(1);
      const b = await connect();
      await clock.advance(5000);
      await a.catalog.setStatus(id, 'interrupted');
      await a.catalog.setOutput(id, '/tmp/deck.apkg', 'apkg');
      await a.catalog.patchSettings(id, { deck: 'Korean', tags: ['a', 'b'] });
      await clock.advance(1000);
      // A JSON merge patch: null removes a key, arrays are replaced, other keys stay.
      await a.catalog.patchSettings(id, { deck: null, tags: ['c'], fields: null });
      const batch = await b.catalog.get(id);
      assert.equal(batch?.status, 'interrupted');
      assert.equal(batch?.outputPath, '/tmp/deck.apkg');
      assert.equal(batch?.format, 'apkg');
      assert.deepEqual(batch?.settings, { model: 'test-model', tags: ['c'] });
      assert.equal(batch?.createdAt, T0);
      assert.equal(batch?.updatedAt, T0 + 6000);
      await a.catalog.setOutput(id, null, 'jsonl');
      assert.equal((await b.catalog.get(id))?.outputPath, null);
    });

    test('stageStats counts each stage’s jobs in the batch’s stage order', async () => {
      const { a, id } = await setup(3);
      await a.queue.claim(id, 'A', 60_000, 3);
      await a.results.completeJob(outcome(id, 0, 'analyze', { cached: true, requests: 0 }), {}, false);
      await a.results.completeJob(
        outcome(id, 0, 'cards', { promptTokens: 7, completionTokens: 3, requests: 2 }),
        {},
        true,
      );
      await a.results.completeJob(outcome(id, 1, 'analyze'), {}, false);
      await a.results.failJob(outcome(id, 1, 'cards', { requests: 3 }), 'server', 'HTTP 500');
      assert.deepEqual(await a.catalog.stageStats(id), [
        {
          stage: 'analyze',
          total: 3,
          done: 2,
          failed: 0,
          pending: 1,
          cached: 1,
          requests: 1,
          promptTokens: 20,
          completionTokens: 10,
        },
        {
          stage: 'cards',
          total: 3,
          done: 1,
          failed: 1,
          pending: 1,
          cached: 0,
          requests: 5,
          promptTokens: 17,
          completionTokens: 8,
        },
      ]);
    });

    test('requestTimes gives nearest-rank percentiles of the time on the wire of finished, uncached jobs', async () => {
      const { a, id } = await setup(10);
      assert.deepEqual(await a.catalog.requestTimes(id), { p50: null, p90: null, p99: null, max: null });
      await a.queue.claim(id, 'A', 60_000, 10);
      for (let i = 0; i < 10; i++) {
        // Waits (limiter, breaker, backoff) are in the duration, not in the request time.
        const requestMs = (10 - i) * 100;
        await a.results.completeJob(
          outcome(id, i, 'analyze', { durationMs: requestMs + 5000, requestMs }),
          {},
          false,
        );
      }
      // Neither a cached answer nor a failure counts, however long it took.
      await a.results.completeJob(
        outcome(id, 0, 'cards', { cached: true, durationMs: 99_000, requestMs: 99_000 }),
        {},
        true,
      );
      await a.results.failJob(
        outcome(id, 1, 'cards', { durationMs: 98_000, requestMs: 98_000 }),
        'timeout',
        'slow',
      );
      assert.deepEqual(await a.catalog.requestTimes(id), { p50: 600, p90: 1000, p99: 1000, max: 1000 });
    });
  });
}
