import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collect, fixtures, idxs, type OpenBatchBackend, outcome, setNow, T0 } from './batch-fixtures.ts';

/**
 * The contract of `BatchResults`, for every backend: outcomes stored per stage and fenced by the
 * lease token, what is read from them, and when other processes see them. Exact assertions on a
 * FakeClock; nothing here waits on the real clock.
 */
export function batchResultsConformance(label: string, open: OpenBatchBackend): void {
  describe(`BatchResults conformance: ${label}`, () => {
    const setup = fixtures(open);

    test('an item stays pending and leased until its last stage is done; results are kept per stage', async () => {
      const { a, id } = await setup(3);
      await a.queue.claim(id, 'A', 60_000, 3);
      await a.results.completeJob(outcome(id, 0, 'analyze'), { meaning: 'zero' }, false);
      assert.deepEqual(await a.results.counts(id), { total: 3, done: 0, failed: 0, pending: 3, leased: 3 });
      assert.deepEqual(await a.results.results(id, 0), { analyze: { meaning: 'zero' } });
      await a.results.completeJob(
        outcome(id, 0, 'cards', { cached: true, requests: 0 }),
        { cards: [1] },
        true,
      );
      assert.deepEqual(await a.results.counts(id), { total: 3, done: 1, failed: 0, pending: 2, leased: 2 });
      assert.deepEqual(await a.results.results(id, 0), {
        analyze: { meaning: 'zero' },
        cards: { cards: [1] },
      });
      assert.deepEqual(await a.queue.leaseOwners(id), ['A']);
    });

    test('failJob fails the item with its error kind and message; counts and totals add up', async () => {
      const { a, id } = await setup(3);
      await a.queue.claim(id, 'A', 60_000, 3);
      await a.results.completeJob(outcome(id, 0, 'analyze'), {}, false);
      await a.results.completeJob(outcome(id, 0, 'cards'), {}, true);
      await a.results.completeJob(outcome(id, 1, 'analyze'), {}, false);
      await a.results.failJob(outcome(id, 1, 'cards', { attempts: 3, requests: 3 }), 'server', 'HTTP 500');
      assert.deepEqual(await a.results.counts(id), { total: 3, done: 1, failed: 1, pending: 1, leased: 1 });
      assert.deepEqual(await a.results.totals(id), {
        requests: 6,
        promptTokens: 40,
        completionTokens: 20,
        cachedJobs: 0,
      });
      assert.deepEqual(await a.results.failures(id, 10), [
        { item: 1, term: 'w1', errorKind: 'server', message: 'HTTP 500' },
      ]);
      // A failed item is not claimable again until it is requeued.
      await a.queue.releaseLeases(id, 'A');
      assert.deepEqual(idxs(await a.queue.claim(id, 'B', 60_000, 3)), [2]);
    });

    test('failures come in input order, at most `limit` of them', async () => {
      const { a, id } = await setup(4);
      await a.queue.claim(id, 'A', 60_000, 4);
      for (const i of [3, 0, 2]) await a.results.failJob(outcome(id, i, 'analyze'), 'timeout', `slow ${i}`);
      assert.deepEqual(
        (await a.results.failures(id, 2)).map((f) => [f.item, f.term, f.message]),
        [
          [0, 'w0', 'slow 0'],
          [2, 'w2', 'slow 2'],
        ],
      );
    });

    test('requeueFailed puts failed items and jobs back to pending and clears their errors', async () => {
      const { a, id } = await setup(3);
      await a.queue.claim(id, 'A', 60_000, 3);
      await a.results.failJob(outcome(id, 0, 'analyze'), 'timeout', 'took too long');
      await a.results.completeJob(outcome(id, 1, 'analyze'), { meaning: 'one' }, false);
      await a.results.failJob(outcome(id, 1, 'cards'), 'invalid_response', 'bad JSON');
      await a.results.completeJob(outcome(id, 2, 'analyze'), {}, false);
      await a.results.completeJob(outcome(id, 2, 'cards'), {}, true);
      assert.equal(await a.results.requeueFailed(id), 2);
      assert.deepEqual(await a.results.failures(id, 10), []);
      assert.deepEqual(await a.results.counts(id), { total: 3, done: 1, failed: 0, pending: 2, leased: 0 });
      assert.deepEqual(
        (await a.catalog.stageStats(id)).map((s) => [s.stage, s.done, s.failed, s.pending]),
        [
          ['analyze', 2, 0, 1],
          ['cards', 1, 0, 2],
        ],
      );
      // The finished first stage of item 1 is still there for the run that picks it up again.
      const again = await a.queue.claim(id, 'B', 60_000, 3);
      assert.deepEqual(idxs(again), [0, 1]);
      assert.deepEqual(
        again.map((c) => c.attempts),
        [2, 2],
      );
      assert.deepEqual(await a.results.results(id, 1), { analyze: { meaning: 'one' } });
      assert.equal(await a.results.requeueFailed(id), 0);
      // The new claim's token admits its outcomes.
      await a.results.completeJob(outcome(id, 1, 'cards', { token: again[1]!.token }), {}, true);
      assert.equal((await a.results.counts(id)).done, 2);
    });

    test('finishedItems yields done items in input order with every stage result, skipping failed and pending ones', async () => {
      const { a, id } = await setup(5);
      await a.queue.claim(id, 'A', 60_000, 5);
      for (const i of [4, 2, 0]) {
        await a.results.completeJob(outcome(id, i, 'analyze'), { a: i }, false);
        await a.results.completeJob(outcome(id, i, 'cards'), { c: `card ${i}` }, true);
      }
      await a.results.completeJob(outcome(id, 1, 'analyze'), { a: 1 }, false);
      await a.results.failJob(outcome(id, 3, 'analyze'), 'server', 'HTTP 503');
      const rows = await collect(a.results.finishedItems(id));
      assert.deepEqual(
        rows.map((r) => [r.idx, r.item.term, r.results]),
        [
          [0, 'w0', { analyze: { a: 0 }, cards: { c: 'card 0' } }],
          [2, 'w2', { analyze: { a: 2 }, cards: { c: 'card 2' } }],
          [4, 'w4', { analyze: { a: 4 }, cards: { c: 'card 4' } }],
        ],
      );
      assert.deepEqual(idxs(await collect(a.results.finishedItems(id, 1))), [2, 4]);
      assert.deepEqual(idxs(await collect(a.results.finishedItems(id, 4))), [4]);
      assert.deepEqual(await collect(a.results.finishedItems(id, 5)), []);
    });

    test('unfinishedItems yields the items still to do in input order with their finished stages; failed ones when asked', async () => {
      const { a, id } = await setup(5);
      await a.queue.claim(id, 'A', 60_000, 5);
      await a.results.completeJob(outcome(id, 0, 'analyze'), { a: 0 }, false);
      await a.results.completeJob(outcome(id, 0, 'cards'), { c: 0 }, true);
      await a.results.completeJob(outcome(id, 2, 'analyze'), { a: 2 }, false);
      await a.results.completeJob(outcome(id, 3, 'analyze'), { a: 3 }, false);
      await a.results.failJob(outcome(id, 3, 'cards'), 'server', 'HTTP 503');
      const pending = await collect(a.results.unfinishedItems(id, { failed: false }));
      assert.deepEqual(
        pending.map((r) => [r.idx, r.item.term, r.results]),
        [
          [1, 'w1', {}],
          [2, 'w2', { analyze: { a: 2 } }],
          [4, 'w4', {}],
        ],
      );
      assert.deepEqual(
        (await collect(a.results.unfinishedItems(id, { failed: true }))).map((r) => [r.idx, r.results]),
        [
          [1, {}],
          [2, { analyze: { a: 2 } }],
          [3, { analyze: { a: 3 } }],
          [4, {}],
        ],
      );
    });

    test('finishedItems reads a large batch whole, each item once, in order', async () => {
      const n = 1000;
      const { a, id } = await setup(n);
      await a.queue.claim(id, 'A', 60_000, n);
      for (let i = 0; i < n; i++) {
        if (i % 7 === 3) continue;
        await a.results.completeJob(outcome(id, i, 'analyze'), { i }, false);
        await a.results.completeJob(outcome(id, i, 'cards'), { i }, true);
      }
      const rows = await collect(a.results.finishedItems(id));
      const expected = Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 !== 3);
      assert.deepEqual(idxs(rows), expected);
      assert.deepEqual(rows.at(-1)?.results, { analyze: { i: n - 1 }, cards: { i: n - 1 } });
    });

    test('a late failure from an owner whose lease expired does not undo the item another owner finished', async () => {
      const { a, connect, clock, id } = await setup(1);
      const b = await connect();
      await a.queue.claim(id, 'A', 1000, 1);
      // A stalls past its lease (suspended laptop, SIGSTOP); B takes the item over and finishes it.
      await setNow(clock, T0 + 1001);
      const [taken] = await b.queue.claim(id, 'B', 1000, 1);
      assert.equal(taken?.idx, 0);
      await b.results.completeJob(outcome(id, 0, 'analyze', { token: taken.token }), { a: 'B' }, false);
      await b.results.completeJob(outcome(id, 0, 'cards', { token: taken.token }), { c: 'B' }, true);
      await b.results.flush();
      // A wakes up and reports the failure of its own, now stale, attempt.
      await a.results.failJob(outcome(id, 0, 'cards'), 'timeout', 'took too long');
      assert.deepEqual(await a.results.counts(id), { total: 1, done: 1, failed: 0, pending: 0, leased: 0 });
      assert.deepEqual(
        (await collect(a.results.finishedItems(id))).map((r) => r.results),
        [{ analyze: { a: 'B' }, cards: { c: 'B' } }],
      );
    });

    test('fencing: a worker whose lease was taken over cannot overwrite the new owner’s work', async () => {
      const { a, connect, clock, id } = await setup(1);
      const b = await connect();
      const [mine] = await a.queue.claim(id, 'A', 1000, 1);
      await setNow(clock, T0 + 1001);
      const [theirs] = await b.queue.claim(id, 'B', 60_000, 1);
      assert.ok(mine && theirs && theirs.token !== mine.token);
      await b.results.completeJob(outcome(id, 0, 'analyze', { token: theirs.token }), { by: 'B' }, false);
      await b.results.flush();
      // A's answers arrive late, under its old token: none of them lands.
      await a.results.completeJob(outcome(id, 0, 'analyze', { token: mine.token }), { by: 'A' }, false);
      await a.results.completeJob(outcome(id, 0, 'cards', { token: mine.token }), { by: 'A' }, true);
      await a.results.flush();
      assert.deepEqual(await b.results.results(id, 0), { analyze: { by: 'B' } });
      assert.deepEqual(await b.results.counts(id), { total: 1, done: 0, failed: 0, pending: 1, leased: 1 });
      await a.results.failJob(outcome(id, 0, 'cards', { token: mine.token }), 'timeout', 'late');
      assert.deepEqual(await b.results.failures(id, 10), []);
      assert.deepEqual(await b.queue.leaseOwners(id), ['B']);
      // B's own outcome under its token finishes the item.
      await b.results.completeJob(outcome(id, 0, 'cards', { token: theirs.token }), { by: 'B' }, true);
      assert.deepEqual(await b.results.results(id, 0), { analyze: { by: 'B' }, cards: { by: 'B' } });
      assert.equal((await a.results.counts(id)).done, 1);
      assert.deepEqual(await a.results.totals(id), {
        requests: 2,
        promptTokens: 20,
        completionTokens: 10,
        cachedJobs: 0,
      });
    });

    test('fencing: a lapsed lease nobody took over still admits its owner’s late answer', async () => {
      const { a, clock, id } = await setup(1);
      const [item] = await a.queue.claim(id, 'A', 1000, 1);
      await setNow(clock, T0 + 5000);
      await a.results.completeJob(outcome(id, 0, 'analyze', { token: item!.token }), { late: true }, false);
      await a.results.completeJob(outcome(id, 0, 'cards', { token: item!.token }), { late: true }, true);
      assert.deepEqual(await a.results.counts(id), { total: 1, done: 1, failed: 0, pending: 0, leased: 0 });
    });

    test('an outcome for a finished item changes nothing', async () => {
      const { a, id } = await setup(1);
      await a.queue.claim(id, 'A', 60_000, 1);
      await a.results.completeJob(outcome(id, 0, 'analyze'), { v: 1 }, false);
      await a.results.completeJob(outcome(id, 0, 'cards'), { v: 1 }, true);
      await a.results.completeJob(outcome(id, 0, 'cards'), { v: 2 }, true);
      await a.results.failJob(outcome(id, 0, 'analyze'), 'server', 'HTTP 500');
      assert.deepEqual(await a.results.results(id, 0), { analyze: { v: 1 }, cards: { v: 1 } });
      assert.deepEqual(await a.results.counts(id), { total: 1, done: 1, failed: 0, pending: 0, leased: 0 });
    });

    test('outcomes are read back at once by the stores that queued them, and by every process after flush', async () => {
      const { a, connect, id } = await setup(2);
      const b = await connect();
      await a.queue.claim(id, 'A', 60_000, 2);
      await a.results.completeJob(outcome(id, 0, 'analyze'), { x: 0 }, false);
      await a.results.completeJob(outcome(id, 0, 'cards'), { x: 0 }, true);
      assert.equal((await a.results.counts(id)).done, 1);
      assert.equal((await a.catalog.overview())[0]?.done, 1);
      await a.results.completeJob(outcome(id, 1, 'analyze'), { x: 1 }, false);
      await a.results.flush();
      assert.deepEqual(await b.results.results(id, 1), { analyze: { x: 1 } });
      assert.equal((await b.results.counts(id)).done, 1);
    });
  });
}
