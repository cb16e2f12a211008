import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { claimable, type ItemLease, leaseLive } from '../../src/batch/rules.ts';
import { joinRun } from '../../src/batch/store.ts';
import { fixtures, idxs, meta, type OpenBatchBackend, outcome, setNow, T0 } from './batch-fixtures.ts';

const alive = (): boolean => true;

/**
 * The contract of `WorkQueue`, for every backend: leases in input order shared by several
 * processes (each `connect()` is one), fencing by lease token, and run registration. Exact
 * assertions on a FakeClock; nothing here waits on the real clock.
 */
export function workQueueConformance(label: string, open: OpenBatchBackend): void {
  describe(`WorkQueue conformance: ${label}`, () => {
    const setup = fixtures(open);

    describe('claims and leases', () => {
      test('claims pending items in input order, a few at a time, each claim counting an attempt', async () => {
        const { a, id } = await setup(5);
        const first = await a.queue.claim(id, 'A', 1000, 2);
        assert.deepEqual(idxs(first), [0, 1]);
        assert.deepEqual(
          first.map((c) => [c.term, c.line, c.attempts]),
          [
            ['w0', 1, 1],
            ['w1', 2, 1],
          ],
        );
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 1000, 2)), [2, 3]);
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 1000, 2)), [4]);
        assert.deepEqual(await a.queue.claim(id, 'A', 1000, 2), []);
        assert.deepEqual(await a.results.counts(id), { total: 5, done: 0, failed: 0, pending: 5, leased: 5 });
        assert.deepEqual(await a.queue.leaseOwners(id), ['A']);
      });

      test('two processes split the items: nobody claims an item leased by another', async () => {
        const { a, connect, id } = await setup(6);
        const b = await connect();
        const claimedA = [...(await a.queue.claim(id, 'A', 1000, 2))];
        const claimedB = [...(await b.queue.claim(id, 'B', 1000, 2))];
        claimedA.push(...(await a.queue.claim(id, 'A', 1000, 2)));
        claimedB.push(...(await b.queue.claim(id, 'B', 1000, 2)));
        assert.deepEqual(idxs(claimedA), [0, 1, 4, 5]);
        assert.deepEqual(idxs(claimedB), [2, 3]);
        assert.deepEqual(await a.queue.claim(id, 'A', 1000, 2), []);
        assert.deepEqual(await b.queue.claim(id, 'B', 1000, 2), []);
        assert.deepEqual((await a.queue.leaseOwners(id)).sort(), ['A', 'B']);
      });

      test('a lease is held up to and including its expiry millisecond, then another owner claims the item', async () => {
        const { a, connect, clock, id } = await setup(2);
        const b = await connect();
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 1000, 2)), [0, 1]);
        await setNow(clock, T0 + 1000);
        assert.deepEqual(await b.queue.claim(id, 'B', 1000, 2), []);
        assert.deepEqual(await b.queue.leaseOwners(id), ['A']);
        await setNow(clock, T0 + 1001);
        assert.deepEqual(await b.queue.leaseOwners(id), []);
        assert.equal((await b.results.counts(id)).leased, 0);
        const taken = await b.queue.claim(id, 'B', 1000, 2);
        assert.deepEqual(idxs(taken), [0, 1]);
        assert.deepEqual(
          taken.map((c) => c.attempts),
          [2, 2],
        );
        assert.deepEqual(await b.queue.leaseOwners(id), ['B']);
      });

      test('the backend agrees with rules.ts leaseLive and claimable at the edges of a lease', async () => {
        const { a, connect, clock, id } = await setup(1);
        const b = await connect();
        const [claimed] = await a.queue.claim(id, 'A', 1000, 1);
        assert.ok(claimed);
        const lease: ItemLease = {
          status: 'pending',
          owner: 'A',
          leaseUntil: T0 + 1000,
          token: claimed.token,
        };
        for (const at of [T0 + 999, T0 + 1000, T0 + 1001]) {
          await setNow(clock, at);
          assert.equal(
            (await b.queue.leaseOwners(id)).length === 1,
            leaseLive(lease, at),
            `leaseLive at ${at}`,
          );
          assert.equal(
            (await b.results.counts(id)).leased === 1,
            leaseLive(lease, at),
            `counts.leased at ${at}`,
          );
          if (claimable(lease, at)) assert.deepEqual(idxs(await b.queue.claim(id, 'B', 1000, 1)), [0]);
          else assert.deepEqual(await b.queue.claim(id, 'B', 1000, 1), [], `not claimable at ${at}`);
        }
      });

      test('every claim of an item gets a greater lease token', async () => {
        const { a, connect, clock, id } = await setup(1);
        const b = await connect();
        const tokens: number[] = [];
        for (const [store, owner] of [
          [a, 'A'],
          [b, 'B'],
          [a, 'A'],
        ] as const) {
          const [item] = await store.queue.claim(id, owner, 100, 1);
          assert.ok(item, `${owner} claims the lapsed item`);
          tokens.push(item.token);
          await clock.advance(101);
        }
        assert.ok(tokens[0]! < tokens[1]! && tokens[1]! < tokens[2]!, `tokens ${tokens.join(' < ')}`);
        // Releasing hands the item back; the next claim still gets a new token.
        const [again] = await b.queue.claim(id, 'B', 60_000, 1);
        assert.ok(again);
        await b.queue.releaseItem(id, 0, again.token);
        const [after] = await a.queue.claim(id, 'A', 60_000, 1);
        assert.ok(after && after.token > again.token);
      });

      test('expired leases behind the claim cursor are found again from the top', async () => {
        const { a, connect, clock, id } = await setup(4);
        const b = await connect();
        assert.deepEqual(idxs(await b.queue.claim(id, 'B', 500, 2)), [0, 1]);
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 5000, 2)), [2, 3]);
        await setNow(clock, T0 + 501);
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 5000, 4)), [0, 1]);
      });

      test('heartbeat extends only the caller’s live leases', async () => {
        const { a, connect, clock, id } = await setup(2);
        const b = await connect();
        await a.queue.claim(id, 'A', 1000, 1);
        await b.queue.claim(id, 'B', 1000, 1);
        await setNow(clock, T0 + 900);
        await a.queue.heartbeat(id, 'A', 1000);
        await setNow(clock, T0 + 1500);
        assert.deepEqual(await b.queue.leaseOwners(id), ['A']);
        assert.deepEqual(idxs(await b.queue.claim(id, 'B', 1000, 2)), [1]);
      });

      test('heartbeat does not renew a lease another owner took over', async () => {
        const { a, connect, clock, id } = await setup(1);
        const b = await connect();
        await a.queue.claim(id, 'A', 1000, 1);
        await setNow(clock, T0 + 1001);
        await b.queue.claim(id, 'B', 1000, 1);
        await a.queue.heartbeat(id, 'A', 60_000);
        assert.deepEqual(await a.queue.leaseOwners(id), ['B']);
        await setNow(clock, T0 + 2002);
        assert.deepEqual(await a.queue.leaseOwners(id), []);
      });

      test('releaseLeases hands the owner’s pending items back at once, in input order', async () => {
        const { a, connect, id } = await setup(4);
        const b = await connect();
        assert.deepEqual(idxs(await a.queue.claim(id, 'A', 60_000, 3)), [0, 1, 2]);
        await a.results.completeJob(outcome(id, 0, 'analyze'), { a: 0 }, false);
        await a.results.completeJob(outcome(id, 0, 'cards'), { c: 0 }, true);
        await a.queue.releaseLeases(id, 'A');
        assert.deepEqual(await a.queue.leaseOwners(id), []);
        assert.deepEqual(idxs(await b.queue.claim(id, 'B', 60_000, 4)), [1, 2, 3]);
        assert.deepEqual(await b.results.counts(id), { total: 4, done: 1, failed: 0, pending: 3, leased: 3 });
      });

      test('releaseItem frees one item and leaves the owner’s other leases alone', async () => {
        const { a, id } = await setup(3);
        const claimed = await a.queue.claim(id, 'A', 60_000, 3);
        await a.queue.releaseItem(id, 1, claimed[1]!.token);
        assert.deepEqual((await a.results.counts(id)).leased, 2);
        assert.deepEqual(idxs(await a.queue.claim(id, 'B', 60_000, 3)), [1]);
      });

      test('fencing: a stale releaseItem does not free the item another owner took over', async () => {
        const { a, connect, clock, id } = await setup(1);
        const b = await connect();
        const c = await connect();
        const [stale] = await a.queue.claim(id, 'A', 1000, 1);
        await setNow(clock, T0 + 1001);
        assert.deepEqual(idxs(await b.queue.claim(id, 'B', 60_000, 1)), [0]);
        // A wakes up and hands back what it thinks is its item.
        await a.queue.releaseItem(id, 0, stale!.token);
        assert.deepEqual(await c.queue.leaseOwners(id), ['B']);
        assert.deepEqual(
          await c.queue.claim(id, 'C', 60_000, 1),
          [],
          'no second owner while B’s lease lives',
        );
      });

      test('leases on one batch are separate from another batch’s', async () => {
        const { a, id } = await setup(2);
        await a.catalog.create(meta('b2'), 'loader');
        await a.catalog.insertItems('b2', [{ idx: 0, term: 'x', line: 1, context: {} }], ['analyze']);
        await a.catalog.finishLoading('b2', 1);
        await a.queue.claim(id, 'A', 60_000, 2);
        assert.deepEqual(idxs(await a.queue.claim('b2', 'A', 60_000, 2)), [0]);
        await a.queue.releaseLeases('b2', 'A');
        assert.deepEqual(await a.queue.leaseOwners(id), ['A']);
        assert.deepEqual(await a.queue.leaseOwners('b2'), []);
      });
    });

    describe('runs', () => {
      const run = (exclusive: boolean, aliveMs = 1000) => ({ exclusive, aliveMs });

      test('cooperating runs join side by side', async () => {
        const { a, id } = await setup(1);
        assert.deepEqual(await a.queue.joinRun(id, 'A', run(false)), { joined: true });
        assert.deepEqual(await a.queue.joinRun(id, 'B', run(false)), { joined: true });
      });

      test('an exclusive run refuses to start beside a live run, and nothing starts beside an exclusive one', async () => {
        const { a, connect, id } = await setup(1);
        const other = await connect();
        assert.deepEqual(await a.queue.joinRun(id, 'A', run(false)), { joined: true });
        assert.deepEqual(await other.queue.joinRun(id, 'L', run(true)), { joined: false, conflicts: ['A'] });
        await a.queue.leaveRun(id, 'A');
        assert.deepEqual(await other.queue.joinRun(id, 'L', run(true)), { joined: true });
        assert.deepEqual(await a.queue.joinRun(id, 'B', run(false)), { joined: false, conflicts: ['L'] });
        assert.deepEqual(await a.queue.joinRun(id, 'C', run(true)), { joined: false, conflicts: ['L'] });
        // Joining again under the same owner is not a conflict with itself.
        assert.deepEqual(await other.queue.joinRun(id, 'L', run(true)), { joined: true });
      });

      test('an exclusive run lists every live run it conflicts with', async () => {
        const { a, id } = await setup(1);
        await a.queue.joinRun(id, 'A', run(false));
        await a.queue.joinRun(id, 'B', run(false));
        const refused = await a.queue.joinRun(id, 'L', run(true));
        assert.equal(refused.joined, false);
        assert.deepEqual(refused.joined ? [] : [...refused.conflicts].sort(), ['A', 'B']);
      });

      test('a run whose registration lapsed does not block an exclusive run', async () => {
        const { a, clock, id } = await setup(1);
        assert.deepEqual(await a.queue.joinRun(id, 'A', run(false)), { joined: true });
        await setNow(clock, T0 + 1000);
        assert.deepEqual(await a.queue.joinRun(id, 'L', run(true)), { joined: false, conflicts: ['A'] });
        await setNow(clock, T0 + 1001);
        assert.deepEqual(await a.queue.joinRun(id, 'L', run(true)), { joined: true });
      });

      test('joinRun: a run whose process is gone leaves, its leases handed back, and the join goes ahead', async () => {
        const { a, connect, id } = await setup(3);
        const b = await connect();
        assert.equal(await joinRun(a.queue, id, 'A', run(false, 60_000), alive), undefined);
        assert.equal(await joinRun(b.queue, id, 'B', run(false, 60_000), alive), undefined);
        await b.queue.claim(id, 'B', 60_000, 2);
        const refused = await joinRun(a.queue, id, 'L', run(true), alive);
        assert.ok(refused === 'A' || refused === 'B', `refused because of ${refused}`);
        await a.queue.leaveRun(id, 'A');
        assert.equal(await joinRun(a.queue, id, 'L', run(true), (owner) => owner !== 'B'), undefined);
        assert.deepEqual(await a.queue.leaseOwners(id), []);
        assert.deepEqual(await b.queue.joinRun(id, 'M', run(false)), { joined: false, conflicts: ['L'] });
      });

      test('heartbeat keeps a run registered past its first expiry', async () => {
        const { a, clock, id } = await setup(1);
        assert.deepEqual(await a.queue.joinRun(id, 'A', run(false)), { joined: true });
        await setNow(clock, T0 + 800);
        await a.queue.heartbeat(id, 'A', 1000);
        await setNow(clock, T0 + 1500);
        assert.deepEqual(await a.queue.joinRun(id, 'L', run(true)), { joined: false, conflicts: ['A'] });
      });

      test('leaveRun hands back the run’s leases and its registration together', async () => {
        const { a, connect, id } = await setup(3);
        const b = await connect();
        await a.queue.joinRun(id, 'A', run(false, 60_000));
        await a.queue.claim(id, 'A', 60_000, 2);
        await a.queue.leaveRun(id, 'A');
        assert.deepEqual(await b.queue.leaseOwners(id), []);
        assert.deepEqual(idxs(await b.queue.claim(id, 'B', 60_000, 3)), [0, 1, 2]);
        assert.deepEqual(await b.queue.joinRun(id, 'L', run(true)), { joined: true });
      });

      test('runs lists the live registrations, oldest first, to any process', async () => {
        const { a, connect, clock, id } = await setup(1);
        const other = await connect();
        assert.deepEqual(await other.queue.runs(id), []);
        await a.queue.joinRun(id, 'B', run(false, 1000));
        await setNow(clock, T0 + 10);
        await a.queue.joinRun(id, 'A', run(false, 5000));
        assert.deepEqual(await other.queue.runs(id), [
          { owner: 'B', exclusive: false, startedAt: T0, aliveUntil: T0 + 1000 },
          { owner: 'A', exclusive: false, startedAt: T0 + 10, aliveUntil: T0 + 5010 },
        ]);
        await setNow(clock, T0 + 1000);
        assert.deepEqual(
          (await other.queue.runs(id)).map((r) => r.owner),
          ['B', 'A'],
        );
        // Past its last millisecond a registration is no longer listed.
        await setNow(clock, T0 + 1001);
        assert.deepEqual(
          (await other.queue.runs(id)).map((r) => r.owner),
          ['A'],
        );
        await a.queue.leaveRun(id, 'A');
        assert.deepEqual(await other.queue.runs(id), []);
        assert.deepEqual(await a.queue.joinRun(id, 'L', run(true)), { joined: true });
        assert.deepEqual(await other.queue.runs(id), [
          { owner: 'L', exclusive: true, startedAt: T0 + 1001, aliveUntil: T0 + 2001 },
        ]);
        assert.deepEqual(await other.queue.runs('no-such-batch'), []);
      });

      test('runs sees a heartbeat renew a registration', async () => {
        const { a, clock, id } = await setup(1);
        await a.queue.joinRun(id, 'A', run(false, 1000));
        await setNow(clock, T0 + 800);
        await a.queue.heartbeat(id, 'A', 1000);
        assert.deepEqual(await a.queue.runs(id), [
          { owner: 'A', exclusive: false, startedAt: T0, aliveUntil: T0 + 1800 },
        ]);
      });

      test('runs on different batches do not conflict', async () => {
        const { a, id } = await setup(1);
        assert.equal(await a.catalog.create(meta('b2'), 'loader'), true);
        assert.deepEqual(await a.queue.joinRun(id, 'L', run(true)), { joined: true });
        assert.deepEqual(await a.queue.joinRun('b2', 'M', run(true)), { joined: true });
      });
    });
  });
}
