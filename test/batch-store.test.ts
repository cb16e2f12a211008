import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BatchMeta, BatchStore, JobOutcome } from '../src/batch/store.ts';
import { FakeClock } from '../src/core/clock.ts';
import { GROUP_COMMIT_MS } from '../src/db/write-behind.ts';
import { stateDbs } from './support/state-db.ts';

const T0 = Date.UTC(2026, 0, 1);
const STAGES = ['analyze', 'cards'] as const;

const dbs = stateDbs();
const tempDb = (): string => dbs.tempDb();

/** A process's view of the state database: its own connection, on the clock shared by the test. */
function openStore(file: string, clock: FakeClock): BatchStore {
  return dbs.openStore(file, clock);
}

/** Moves the fake clock to `at` (firing the group commits that fall due on the way). */
async function setNow(clock: FakeClock, at: number): Promise<void> {
  await clock.advance(at - clock.now());
}

function meta(id: string): BatchMeta {
  return {
    id,
    inputName: 'words.txt',
    inputDigest: 'digest',
    settingsHash: 'settings',
    pipeline: 'vocabulary',
    stages: [...STAGES],
    model: 'test-model',
    baseUrl: 'http://127.0.0.1:1/v1',
    outputPath: null,
    format: 'jsonl',
    settings: { model: 'test-model' },
  };
}

/** A batch of `n` loaded items (terms w0, w1, ...) and the shared clock driving every store on it. */
function setup(n: number, id = 'b1') {
  const file = tempDb();
  const clock = new FakeClock(T0);
  const store = openStore(file, clock);
  assert.equal(store.create(meta(id), 'loader'), true);
  store.insertItems(
    id,
    Array.from({ length: n }, (_, i) => ({ idx: i, term: `w${i}`, line: i + 1, context: {} })),
    STAGES,
  );
  store.finishLoading(id, n);
  return { file, clock, store, id };
}

function outcome(batchId: string, idx: number, stage: string, extra: Partial<JobOutcome> = {}): JobOutcome {
  return {
    batchId,
    idx,
    stage,
    attempts: 1,
    requests: 1,
    promptTokens: 10,
    completionTokens: 5,
    cached: false,
    durationMs: 100,
    ...extra,
  };
}

const idxs = (items: readonly { idx: number }[]): number[] => items.map((i) => i.idx);

describe('BatchStore batches', () => {
  test('create reports whether this call made the batch; a loaded batch is running with its total', () => {
    const { store, id } = setup(3);
    assert.equal(store.create(meta(id), 'someone-else'), false);
    const batch = store.get(id);
    assert.equal(batch?.status, 'running');
    assert.equal(batch?.total, 3);
    assert.equal(batch?.loader, null);
    assert.deepEqual(batch?.stages, ['analyze', 'cards']);
    assert.deepEqual(batch?.settings, { model: 'test-model' });
    assert.deepEqual(store.counts(id), { total: 3, done: 0, failed: 0, pending: 3, leased: 0 });
  });

  test('overview lists every batch newest first with its counts and totals', async () => {
    const { store, id, clock } = setup(3);
    store.completeJob(outcome(id, 0, 'analyze'), { a: 1 }, false);
    store.completeJob(outcome(id, 0, 'cards'), { c: 1 }, true);
    store.failJob(outcome(id, 1, 'analyze', { requests: 2 }), 'invalid_response', 'bad');
    await clock.advance(1000);
    assert.equal(store.create(meta('b2'), 'loader'), true);
    store.finishLoading('b2', 0);
    const all = store.overview();
    assert.deepEqual(
      all.map((o) => [o.batch.id, o.total, o.done, o.failed, o.requests, o.tokens]),
      [
        ['b2', 0, 0, 0, 0, 0],
        [id, 3, 1, 1, 4, 45],
      ],
    );
  });

  test('items come back exactly as loaded, whatever their text, in chunks given one statement each', () => {
    const file = tempDb();
    const store = openStore(file, new FakeClock(T0));
    store.create(meta('b9'), 'loader');
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
    store.insertItems('b9', items.slice(0, 4), STAGES);
    store.insertItems('b9', items.slice(4), STAGES);
    store.finishLoading('b9', items.length);
    const claimed = store.claim('b9', 'A', 1000, 10);
    assert.deepEqual(
      claimed.map(({ attempts: _, ...rest }) => rest),
      items,
    );
    assert.equal(store.counts('b9').total, items.length);
    assert.throws(
      () =>
        store.insertItems(
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

  test('delete removes the batch with its items and jobs', () => {
    const { store, id } = setup(3);
    store.delete(id);
    assert.equal(store.get(id), undefined);
    const rows = (table: string): number =>
      (store.db.prepare(`SELECT count(*) AS n FROM ${table} WHERE batch_id = ?`).get(id) as { n: number }).n;
    assert.equal(rows('items'), 0);
    assert.equal(rows('jobs'), 0);
  });
});

describe('BatchStore leases', () => {
  test('claims pending items in input order, a few at a time, each claim counting an attempt', () => {
    const { store, id } = setup(5);
    const first = store.claim(id, 'A', 1000, 2);
    assert.deepEqual(idxs(first), [0, 1]);
    assert.deepEqual(
      first.map((c) => [c.term, c.line, c.attempts]),
      [
        ['w0', 1, 1],
        ['w1', 2, 1],
      ],
    );
    assert.deepEqual(idxs(store.claim(id, 'A', 1000, 2)), [2, 3]);
    assert.deepEqual(idxs(store.claim(id, 'A', 1000, 2)), [4]);
    assert.deepEqual(store.claim(id, 'A', 1000, 2), []);
    assert.deepEqual(store.counts(id), { total: 5, done: 0, failed: 0, pending: 5, leased: 5 });
    assert.deepEqual(store.leaseOwners(id), ['A']);
  });

  test('two processes split the items: nobody claims an item leased by another', () => {
    const { file, clock, store: a, id } = setup(6);
    const b = openStore(file, clock);
    const claimedA = [...a.claim(id, 'A', 1000, 2)];
    const claimedB = [...b.claim(id, 'B', 1000, 2)];
    claimedA.push(...a.claim(id, 'A', 1000, 2));
    claimedB.push(...b.claim(id, 'B', 1000, 2));
    assert.deepEqual(idxs(claimedA), [0, 1, 4, 5]);
    assert.deepEqual(idxs(claimedB), [2, 3]);
    assert.deepEqual(a.claim(id, 'A', 1000, 2), []);
    assert.deepEqual(b.claim(id, 'B', 1000, 2), []);
    assert.deepEqual(a.leaseOwners(id).sort(), ['A', 'B']);
  });

  test('a lease is held up to and including its expiry millisecond, then another owner claims the item', async () => {
    const { file, clock, store: a, id } = setup(2);
    const b = openStore(file, clock);
    assert.deepEqual(idxs(a.claim(id, 'A', 1000, 2)), [0, 1]);
    await setNow(clock, T0 + 1000);
    assert.deepEqual(b.claim(id, 'B', 1000, 2), []);
    assert.deepEqual(b.leaseOwners(id), ['A']);
    await setNow(clock, T0 + 1001);
    assert.deepEqual(b.leaseOwners(id), []);
    assert.equal(b.counts(id).leased, 0);
    const taken = b.claim(id, 'B', 1000, 2);
    assert.deepEqual(idxs(taken), [0, 1]);
    assert.deepEqual(
      taken.map((c) => c.attempts),
      [2, 2],
    );
    assert.deepEqual(b.leaseOwners(id), ['B']);
  });

  test('expired leases behind the claim cursor are found again from the top', async () => {
    const { file, clock, store: a, id } = setup(4);
    const b = openStore(file, clock);
    assert.deepEqual(idxs(b.claim(id, 'B', 500, 2)), [0, 1]);
    assert.deepEqual(idxs(a.claim(id, 'A', 5000, 2)), [2, 3]);
    await setNow(clock, T0 + 501);
    assert.deepEqual(idxs(a.claim(id, 'A', 5000, 4)), [0, 1]);
  });

  test('heartbeat extends only the caller’s live leases', async () => {
    const { file, clock, store: a, id } = setup(2);
    const b = openStore(file, clock);
    a.claim(id, 'A', 1000, 1);
    b.claim(id, 'B', 1000, 1);
    await setNow(clock, T0 + 900);
    a.heartbeat('A', 1000);
    await setNow(clock, T0 + 1500);
    assert.deepEqual(b.leaseOwners(id), ['A']);
    assert.deepEqual(idxs(b.claim(id, 'B', 1000, 2)), [1]);
  });

  test('releaseLeases hands the owner’s pending items back at once, in input order', () => {
    const { file, clock, store: a, id } = setup(4);
    const b = openStore(file, clock);
    assert.deepEqual(idxs(a.claim(id, 'A', 60_000, 3)), [0, 1, 2]);
    a.completeJob(outcome(id, 0, 'analyze'), { a: 0 }, false);
    a.completeJob(outcome(id, 0, 'cards'), { c: 0 }, true);
    a.releaseLeases('A');
    assert.deepEqual(a.leaseOwners(id), []);
    assert.deepEqual(idxs(b.claim(id, 'B', 60_000, 4)), [1, 2, 3]);
    assert.deepEqual(b.counts(id), { total: 4, done: 1, failed: 0, pending: 3, leased: 3 });
  });

  test('releaseItem frees one item and leaves the owner’s other leases alone', () => {
    const { store, id } = setup(3);
    store.claim(id, 'A', 60_000, 3);
    store.releaseItem(id, 1);
    assert.deepEqual(store.counts(id).leased, 2);
    assert.deepEqual(idxs(store.claim(id, 'B', 60_000, 3)), [1]);
  });
});

describe('BatchStore job outcomes', () => {
  test('an item stays pending and leased until its last stage is done; results are kept per stage', () => {
    const { store, id } = setup(3);
    store.claim(id, 'A', 60_000, 3);
    store.completeJob(outcome(id, 0, 'analyze'), { meaning: 'zero' }, false);
    assert.deepEqual(store.counts(id), { total: 3, done: 0, failed: 0, pending: 3, leased: 3 });
    assert.deepEqual(store.results(id, 0), { analyze: { meaning: 'zero' } });
    store.completeJob(outcome(id, 0, 'cards', { cached: true, requests: 0 }), { cards: [1] }, true);
    assert.deepEqual(store.counts(id), { total: 3, done: 1, failed: 0, pending: 2, leased: 2 });
    assert.deepEqual(store.results(id, 0), { analyze: { meaning: 'zero' }, cards: { cards: [1] } });
    assert.deepEqual(store.leaseOwners(id), ['A']);
  });

  test('failJob fails the item with its error kind and message; counts and totals add up', () => {
    const { store, id } = setup(3);
    store.claim(id, 'A', 60_000, 3);
    store.completeJob(outcome(id, 0, 'analyze'), {}, false);
    store.completeJob(outcome(id, 0, 'cards'), {}, true);
    store.completeJob(outcome(id, 1, 'analyze'), {}, false);
    store.failJob(outcome(id, 1, 'cards', { attempts: 3, requests: 3 }), 'server', 'HTTP 500');
    assert.deepEqual(store.counts(id), { total: 3, done: 1, failed: 1, pending: 1, leased: 1 });
    assert.deepEqual(store.totals(id), {
      requests: 6,
      promptTokens: 40,
      completionTokens: 20,
      cachedJobs: 0,
    });
    assert.deepEqual(store.failures(id, 10), [
      { item: 1, term: 'w1', errorKind: 'server', message: 'HTTP 500' },
    ]);
    // A failed item is not claimable again until it is requeued.
    store.releaseLeases('A');
    assert.deepEqual(idxs(store.claim(id, 'B', 60_000, 3)), [2]);
  });

  test('requeueFailed puts failed items and jobs back to pending and clears their errors', () => {
    const { store, id } = setup(3);
    store.claim(id, 'A', 60_000, 3);
    store.failJob(outcome(id, 0, 'analyze'), 'timeout', 'took too long');
    store.completeJob(outcome(id, 1, 'analyze'), { meaning: 'one' }, false);
    store.failJob(outcome(id, 1, 'cards'), 'invalid_response', 'bad JSON');
    store.completeJob(outcome(id, 2, 'analyze'), {}, false);
    store.completeJob(outcome(id, 2, 'cards'), {}, true);
    assert.equal(store.requeueFailed(id), 2);
    assert.deepEqual(store.failures(id, 10), []);
    assert.deepEqual(store.counts(id), { total: 3, done: 1, failed: 0, pending: 2, leased: 0 });
    const jobs = store.db
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
    // The finished first stage of item 1 is still there for the run that picks it up again.
    assert.deepEqual(idxs(store.claim(id, 'B', 60_000, 3)), [0, 1]);
    assert.deepEqual(store.results(id, 1), { analyze: { meaning: 'one' } });
    assert.equal(store.requeueFailed(id), 0);
  });

  test('finishedItems yields done items in input order with every stage result, skipping failed and pending ones', () => {
    const { store, id } = setup(5);
    store.claim(id, 'A', 60_000, 5);
    for (const i of [4, 2, 0]) {
      store.completeJob(outcome(id, i, 'analyze'), { a: i }, false);
      store.completeJob(outcome(id, i, 'cards'), { c: `card ${i}` }, true);
    }
    store.completeJob(outcome(id, 1, 'analyze'), { a: 1 }, false);
    store.failJob(outcome(id, 3, 'analyze'), 'server', 'HTTP 503');
    const rows = [...store.finishedItems(id)];
    assert.deepEqual(
      rows.map((r) => [r.idx, r.item.term, r.results]),
      [
        [0, 'w0', { analyze: { a: 0 }, cards: { c: 'card 0' } }],
        [2, 'w2', { analyze: { a: 2 }, cards: { c: 'card 2' } }],
        [4, 'w4', { analyze: { a: 4 }, cards: { c: 'card 4' } }],
      ],
    );
  });

  test('a late failure from an owner whose lease expired does not undo the item another owner finished', async () => {
    const { file, clock, store: a, id } = setup(1);
    const b = openStore(file, clock);
    a.claim(id, 'A', 1000, 1);
    // A stalls past its lease (suspended laptop, SIGSTOP); B takes the item over and finishes it.
    await setNow(clock, T0 + 1001);
    assert.deepEqual(idxs(b.claim(id, 'B', 1000, 1)), [0]);
    b.completeJob(outcome(id, 0, 'analyze'), { a: 'B' }, false);
    b.completeJob(outcome(id, 0, 'cards'), { c: 'B' }, true);
    b.flush();
    // A wakes up and reports the failure of its own, now stale, attempt.
    a.failJob(outcome(id, 0, 'cards'), 'timeout', 'took too long');
    assert.deepEqual(a.counts(id), { total: 1, done: 1, failed: 0, pending: 0, leased: 0 });
    assert.deepEqual(
      [...a.finishedItems(id)].map((r) => r.results),
      [{ analyze: { a: 'B' }, cards: { c: 'B' } }],
    );
  });

  test('job outcomes are committed GROUP_COMMIT_MS after the first of them, without an explicit flush', async () => {
    const { file, clock, store: a, id } = setup(1);
    const b = openStore(file, clock);
    a.claim(id, 'A', 60_000, 1);
    a.completeJob(outcome(id, 0, 'analyze'), {}, false);
    await clock.advance(GROUP_COMMIT_MS - 1);
    a.completeJob(outcome(id, 0, 'cards'), {}, true);
    assert.equal(b.counts(id).done, 0, 'not committed yet: another connection does not see it');
    await clock.advance(1);
    assert.equal(b.counts(id).done, 1, 'both outcomes committed together, one window after the first');
  });
});

describe('BatchStore runs', () => {
  const alive = (): boolean => true;

  test('cooperating runs join side by side', () => {
    const { store, id } = setup(1);
    assert.equal(store.joinRun(id, 'A', false, 1000, alive), undefined);
    assert.equal(store.joinRun(id, 'B', false, 1000, alive), undefined);
  });

  test('an exclusive run refuses to start beside a live run, and nothing starts beside an exclusive one', () => {
    const { file, clock, store, id } = setup(1);
    const other = openStore(file, clock);
    assert.equal(store.joinRun(id, 'A', false, 1000, alive), undefined);
    assert.equal(other.joinRun(id, 'L', true, 1000, alive), 'A');
    store.leaveRun('A');
    assert.equal(other.joinRun(id, 'L', true, 1000, alive), undefined);
    assert.equal(store.joinRun(id, 'B', false, 1000, alive), 'L');
    assert.equal(store.joinRun(id, 'C', true, 1000, alive), 'L');
    // Joining again under the same owner is not a conflict with itself.
    assert.equal(other.joinRun(id, 'L', true, 1000, alive), undefined);
  });

  test('a run whose registration expired or whose process is gone does not block an exclusive run', async () => {
    const { store, id } = setup(1);
    const clock = new FakeClock(T0);
    const s = openStore(store.db.name, clock);
    assert.equal(s.joinRun(id, 'A', false, 1000, alive), undefined);
    await setNow(clock, T0 + 1000);
    assert.equal(s.joinRun(id, 'L', true, 1000, alive), 'A');
    await setNow(clock, T0 + 1001);
    assert.equal(s.joinRun(id, 'L', true, 1000, alive), undefined);
    s.leaveRun('L');
    assert.equal(s.joinRun(id, 'B', false, 60_000, alive), undefined);
    assert.equal(
      s.joinRun(id, 'L', true, 60_000, (owner) => owner !== 'B'),
      undefined,
    );
  });

  test('heartbeat keeps a run registered past its first expiry', async () => {
    const { store, id } = setup(1);
    const clock = new FakeClock(T0);
    const s = openStore(store.db.name, clock);
    assert.equal(s.joinRun(id, 'A', false, 1000, alive), undefined);
    await setNow(clock, T0 + 800);
    s.heartbeat('A', 1000);
    await setNow(clock, T0 + 1500);
    assert.equal(s.joinRun(id, 'L', true, 1000, alive), 'A');
  });

  test('runs on different batches do not conflict', () => {
    const { store, id } = setup(1);
    assert.equal(store.create(meta('b2'), 'loader'), true);
    assert.equal(store.joinRun(id, 'L', true, 1000, alive), undefined);
    assert.equal(store.joinRun('b2', 'M', true, 1000, alive), undefined);
  });
});
