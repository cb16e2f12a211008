import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { FakeClock } from '../../src/core/clock.ts';
import type { Circuit } from '../../src/resilience/breaker-machine.ts';
import type {
  BreakerAdmin,
  BreakerSnapshot,
  BreakerStore,
  TransitChange,
} from '../../src/resilience/breaker-store.ts';

export type Breakers = BreakerStore & BreakerAdmin;

/** A backend opened for one test: every `connect()` is another process on the same state. */
export interface BreakerBackend {
  connect(): Promise<Breakers>;
  close(): Promise<void>;
}

const key = 'https://api.example.com/v1|gpt-test|abc123def456';
const otherKey = 'https://other.example/v1|m|nokey';
const windowMs = 30_000;
const overloaded = { kind: 'server', message: 'provider returned HTTP 503 Service Unavailable' };

const opened = (at: number): Circuit => ({
  state: 'open',
  openedAt: at,
  retryAt: at + 30_000,
  opens: 1,
  reason: '10 of 10 calls failed',
});

/** A change as the facade writes it: announced unless told otherwise, the window kept unless closing. */
function change(next: Circuit, from: Circuit['state'] | null, cause = `to ${next.state}`): TransitChange {
  return {
    next,
    note: from === null ? null : { from, cause },
    resetWindow: next.state === 'closed',
  };
}

/**
 * The contract of `BreakerStore` and `BreakerAdmin`, for every backend: `open` gives a fresh, empty
 * backend whose time is `clock`. Exact assertions on fake time; nothing here waits on the real clock.
 * The FakeClock starts on a bucket boundary (2026-01-01T00:00:00Z, buckets of 3 s for a 30 s window).
 */
export function breakerStoreConformance(
  label: string,
  open: (clock: FakeClock) => Promise<BreakerBackend>,
): void {
  describe(`BreakerStore conformance: ${label}`, () => {
    const backends: BreakerBackend[] = [];
    afterEach(async () => {
      for (const b of backends.splice(0)) await b.close();
    });

    async function setup(): Promise<{ clock: FakeClock; t0: number; a: Breakers; b: Breakers }> {
      const clock = new FakeClock();
      const backend = await open(clock);
      backends.push(backend);
      return { clock, t0: clock.now(), a: await backend.connect(), b: await backend.connect() };
    }

    const closedSnapshot = (now: number, over: Partial<BreakerSnapshot> = {}): BreakerSnapshot => ({
      key,
      circuit: { state: 'closed' },
      version: 0,
      window: { calls: 0, failures: 0 },
      lastError: null,
      lastActiveAt: now,
      now,
      ...over,
    });

    describe('read and ensure', () => {
      test('a breaker never stored reads closed at version 0, and reading does not create it', async () => {
        const { t0, a } = await setup();
        assert.deepEqual(await a.read(key, windowMs), closedSnapshot(t0));
        assert.deepEqual(await a.list(windowMs), []);
      });

      test('ensure creates it closed once; a later ensure changes nothing', async () => {
        const { clock, t0, a, b } = await setup();
        await a.ensure(key);
        await clock.advance(5000);
        await b.ensure(key);
        assert.deepEqual(await b.list(windowMs), [closedSnapshot(t0 + 5000, { lastActiveAt: t0 })]);
      });
    });

    describe('record: the window', () => {
      test('counts calls and failures while closed, from every connection, and remembers the last error', async () => {
        const { clock, t0, a, b } = await setup();
        const first = await a.record(key, { calls: 3, failures: 1, error: overloaded }, windowMs);
        assert.deepEqual(first, {
          counted: true,
          snapshot: closedSnapshot(t0, {
            window: { calls: 3, failures: 1 },
            lastError: { ...overloaded, at: t0 },
          }),
        });
        await clock.advance(1000);
        const second = await b.record(key, { calls: 2, failures: 0 }, windowMs);
        assert.equal(second.counted, true);
        assert.deepEqual(second.snapshot.window, { calls: 5, failures: 1 });
        assert.deepEqual(second.snapshot.lastError, { ...overloaded, at: t0 });
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 5, failures: 1 });
      });

      test('holds the buckets that began within the last windowMs of the backend clock', async () => {
        const { clock, t0, a } = await setup();
        await a.record(key, { calls: 1, failures: 1 }, windowMs); // bucket t0
        await clock.advance(2999);
        await a.record(key, { calls: 1, failures: 0 }, windowMs); // still bucket t0
        await clock.advance(3000);
        await a.record(key, { calls: 1, failures: 0 }, windowMs); // bucket t0 + 3 s
        await clock.advance(30_000 - 5999 - 1);
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 3, failures: 1 });
        await clock.advance(1);
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 1, failures: 0 });
        assert.equal(clock.now(), t0 + 30_000);
        await clock.advance(2999);
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 1, failures: 0 });
        await clock.advance(1);
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 0, failures: 0 });
      });

      test('a bucket reused a window later starts over', async () => {
        const { clock, a } = await setup();
        await a.record(key, { calls: 4, failures: 4 }, windowMs);
        await clock.advance(windowMs);
        const r = await a.record(key, { calls: 1, failures: 0 }, windowMs);
        assert.deepEqual(r.snapshot.window, { calls: 1, failures: 0 });
      });

      test('counts nothing while the breaker is not closed, but still remembers the error', async () => {
        const { clock, t0, a, b } = await setup();
        await a.record(key, { calls: 10, failures: 10, error: overloaded }, windowMs);
        assert.deepEqual(await a.transit(key, 0, change(opened(t0), 'closed')), { ok: true, at: t0 });
        await clock.advance(1000);
        const late = { kind: 'timeout', message: 'no answer in 60 s' };
        const r = await b.record(key, { calls: 1, failures: 1, error: late }, windowMs);
        assert.equal(r.counted, false);
        assert.deepEqual(r.snapshot.circuit, opened(t0));
        assert.equal(r.snapshot.version, 1);
        assert.deepEqual(r.snapshot.window, { calls: 10, failures: 10 });
        assert.deepEqual(r.snapshot.lastError, { ...late, at: t0 + 1000 });
      });

      test('a tally of no calls only remembers the error', async () => {
        const { t0, a } = await setup();
        const r = await a.record(key, { calls: 0, failures: 0, error: overloaded }, windowMs);
        assert.deepEqual(r, {
          counted: false,
          snapshot: closedSnapshot(t0, { lastError: { ...overloaded, at: t0 } }),
        });
      });

      test('creates a breaker never stored (or removed) closed, and counts into it', async () => {
        const { t0, a } = await setup();
        const r = await a.record(key, { calls: 2, failures: 1 }, windowMs);
        assert.equal(r.counted, true);
        assert.deepEqual(await a.list(windowMs), [closedSnapshot(t0, { window: { calls: 2, failures: 1 } })]);
      });
    });

    describe('transit: compare-and-set', () => {
      test('writes every kind of state exactly as given and bumps the version each time', async () => {
        const { clock, t0, a, b } = await setup();
        const states: Circuit[] = [
          opened(t0),
          {
            state: 'half_open',
            openedAt: t0,
            opens: 1,
            probe: { owner: 'run-7', until: t0 + 90_000 },
            reason: '10 of 10 calls failed',
          },
          { state: 'open', openedAt: t0 + 2000, retryAt: t0 + 47_000, opens: 2, reason: 'probe failed' },
          { state: 'isolated', openedAt: t0 + 2000, opens: 2, reason: null },
          { state: 'isolated', openedAt: t0 + 2000, opens: 2, reason: 'maintenance' },
          { state: 'closed' },
        ];
        let version = 0;
        for (const next of states) {
          await clock.advance(1000);
          const before = (await a.read(key, windowMs)).circuit.state;
          assert.deepEqual(await a.transit(key, version, change(next, before)), {
            ok: true,
            at: clock.now(),
          });
          version++;
          const read = await b.read(key, windowMs);
          assert.deepEqual([read.circuit, read.version], [next, version]);
        }
      });

      test('announced changes go to history with the backend time; unannounced ones do not', async () => {
        const { clock, t0, a } = await setup();
        await a.transit(key, 0, change(opened(t0), 'closed', 'tripped'));
        await clock.advance(500);
        const same = { ...opened(t0), reason: 'still tripped' };
        assert.deepEqual(await a.transit(key, 1, change(same, null)), { ok: true, at: t0 + 500 });
        assert.deepEqual((await a.read(key, windowMs)).circuit, same);
        assert.deepEqual(await a.history(10), [
          { key, at: t0, from: 'closed', to: 'open', cause: 'tripped' },
        ]);
      });

      test('a transit from a version that moved is refused and changes nothing', async () => {
        const { t0, a, b } = await setup();
        await a.ensure(key);
        const seenByA = await a.read(key, windowMs);
        const seenByB = await b.read(key, windowMs);
        const isolated: Circuit = { state: 'isolated', openedAt: t0, opens: 0, reason: 'by b' };
        assert.deepEqual(await b.transit(key, seenByB.version, change(isolated, 'closed')), {
          ok: true,
          at: t0,
        });
        assert.deepEqual(await a.transit(key, seenByA.version, change(opened(t0), 'closed')), { ok: false });
        const now = await a.read(key, windowMs);
        assert.deepEqual([now.circuit, now.version], [isolated, 1]);
        assert.equal((await a.history(10)).length, 1);
      });

      test('of two connections racing from the same version, exactly one wins', async () => {
        const { t0, a, b } = await setup();
        const probe = (owner: string): Circuit => ({
          state: 'half_open',
          openedAt: t0,
          opens: 1,
          probe: { owner, until: t0 + 90_000 },
          reason: 'r',
        });
        await a.transit(key, 0, change(opened(t0), 'closed'));
        const results = await Promise.all([
          a.transit(key, 1, change(probe('a'), 'open')),
          b.transit(key, 1, change(probe('b'), 'open')),
        ]);
        assert.deepEqual(results.map((r) => r.ok).sort(), [false, true]);
        const winner = results[0]?.ok ? 'a' : 'b';
        assert.deepEqual((await b.read(key, windowMs)).circuit, probe(winner));
      });

      test('creates a breaker never stored when the expected version is 0', async () => {
        const { t0, a } = await setup();
        const isolated: Circuit = { state: 'isolated', openedAt: t0, opens: 0, reason: 'before any run' };
        assert.deepEqual(await a.transit(key, 0, change(isolated, 'closed')), { ok: true, at: t0 });
        assert.deepEqual(await a.list(windowMs), [closedSnapshot(t0, { circuit: isolated, version: 1 })]);
      });

      test('a breaker never stored refuses any version but 0', async () => {
        const { a } = await setup();
        assert.deepEqual(await a.transit(key, 3, change({ state: 'closed' }, null)), { ok: false });
        assert.deepEqual(await a.list(windowMs), []);
      });

      test('resetWindow forgets the counts; without it they stay', async () => {
        const { t0, a } = await setup();
        await a.record(key, { calls: 10, failures: 10 }, windowMs);
        await a.transit(key, 0, change(opened(t0), 'closed'));
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 10, failures: 10 });
        await a.transit(key, 1, change({ state: 'closed' }, 'open'));
        assert.deepEqual((await a.read(key, windowMs)).window, { calls: 0, failures: 0 });
      });
    });

    describe('admin queries', () => {
      test('history is newest first, limited, and keeps the last 500 transitions', async () => {
        const { clock, t0, a } = await setup();
        for (let v = 0; v < 520; v++) {
          const next: Circuit =
            v % 2 === 0
              ? { state: 'isolated', openedAt: t0, opens: 0, reason: `round ${v}` }
              : { state: 'closed' };
          await a.transit(key, v, change(next, v % 2 === 0 ? 'closed' : 'isolated', `step ${v}`));
          await clock.advance(1);
        }
        const all = await a.history(1000);
        assert.equal(all.length, 500);
        assert.deepEqual(all[0], { key, at: t0 + 519, from: 'isolated', to: 'closed', cause: 'step 519' });
        assert.deepEqual(all[499], { key, at: t0 + 20, from: 'closed', to: 'isolated', cause: 'step 20' });
        assert.deepEqual(
          (await a.history(2)).map((e) => e.cause),
          ['step 519', 'step 518'],
        );
      });

      test('history of several breakers is one list, newest first, and keeps the last 500 of them all', async () => {
        const { clock, t0, a, b } = await setup();
        // 300 transitions of each breaker, interleaved, each a millisecond after the last.
        for (let v = 0; v < 300; v++) {
          for (const [store, k] of [
            [a, key],
            [b, otherKey],
          ] as const) {
            const next: Circuit =
              v % 2 === 0 ? { state: 'isolated', openedAt: t0, opens: 0, reason: null } : { state: 'closed' };
            await store.transit(k, v, change(next, v % 2 === 0 ? 'closed' : 'isolated', `${k} ${v}`));
            await clock.advance(1);
          }
        }
        const all = await b.history(1000);
        assert.equal(all.length, 500);
        assert.deepEqual(
          all.slice(0, 3).map((e) => [e.cause, e.at]),
          [
            [`${otherKey} 299`, t0 + 599],
            [`${key} 299`, t0 + 598],
            [`${otherKey} 298`, t0 + 597],
          ],
        );
        assert.deepEqual(all[499], {
          key,
          at: t0 + 100,
          from: 'closed',
          to: 'isolated',
          cause: `${key} 50`,
        });
      });

      test('list shows every breaker with its window and last activity (a counted call dated by its bucket)', async () => {
        const { clock, t0, a, b } = await setup();
        await a.ensure(key);
        await clock.advance(4000);
        await a.record(key, { calls: 2, failures: 0 }, windowMs); // bucket t0 + 3 s
        await clock.advance(1000);
        await b.record(otherKey, { calls: 0, failures: 0, error: overloaded }, windowMs);
        const now = t0 + 5000;
        const listed = (await b.list(windowMs)).sort((x, y) => x.key.localeCompare(y.key));
        assert.deepEqual(listed, [
          closedSnapshot(now, { window: { calls: 2, failures: 0 }, lastActiveAt: t0 + 3000 }),
          closedSnapshot(now, {
            key: otherKey,
            lastError: { ...overloaded, at: now },
            lastActiveAt: now,
          }),
        ]);
        // A 2 s window at t0 + 5 s no longer holds the bucket that began at t0 + 3 s.
        assert.deepEqual(
          (await a.list(2000)).map((s) => s.window),
          [
            { calls: 0, failures: 0 },
            { calls: 0, failures: 0 },
          ],
        );
      });

      test('remove forgets a breaker and its window but keeps its history; it comes back closed', async () => {
        const { clock, t0, a, b } = await setup();
        await a.record(key, { calls: 10, failures: 10, error: overloaded }, windowMs);
        await a.transit(key, 0, change(opened(t0), 'closed', 'tripped'));
        await b.ensure(otherKey);
        assert.equal(await b.remove(key), true);
        assert.equal(await b.remove(key), false);
        assert.deepEqual(await a.read(key, windowMs), closedSnapshot(t0));
        assert.deepEqual(
          (await a.list(windowMs)).map((s) => s.key),
          [otherKey],
        );
        assert.deepEqual(
          (await a.history(10)).map((e) => e.cause),
          ['tripped'],
        );
        await clock.advance(1000);
        const back = await a.record(key, { calls: 1, failures: 1 }, windowMs);
        assert.equal(back.counted, true);
        assert.deepEqual(back.snapshot, closedSnapshot(t0 + 1000, { window: { calls: 1, failures: 1 } }));
      });
    });
  });
}
