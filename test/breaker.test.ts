import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { ProviderError } from '../src/core/errors.ts';
import { type Db, openDatabase } from '../src/db/open.ts';
import {
  type BreakerSettings,
  type BreakerTransition,
  breakerHistory,
  type CallOutcome,
  CircuitBreaker,
  circuitOpenError,
  classifyHttpError,
  defaultBreakerSettings,
  listBreakers,
  removeBreaker,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';

const key = 'https://api.example.com/v1|gpt-test|abc123def456';
const settings: BreakerSettings = defaultBreakerSettings;
const ok: CallOutcome = { ok: true };
const fail = (status = 503): CallOutcome => ({
  ok: false,
  error: classifyHttpError(status, '', new Headers(), 0),
});
const plain = { probe: false };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

interface Fixture {
  clock: FakeClock;
  file: string;
  db: Db;
  store: SqliteBreakerStore;
  breaker: CircuitBreaker;
  transitions: BreakerTransition[];
  /** Another process: its own connection to the same file and its own owner id. */
  other(ownerId?: string): CircuitBreaker;
}

function setup(s: BreakerSettings = settings): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'fc-'));
  const file = join(dir, 'state.db');
  const clock = new FakeClock();
  const db = openDatabase(file);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => db.close());
  const transitions: BreakerTransition[] = [];
  const store = new SqliteBreakerStore(db, clock);
  const breaker = new CircuitBreaker(store, key, s, {
    clock,
    ownerId: 'p1',
    onTransition: (t) => transitions.push(t),
  });
  return {
    clock,
    file,
    db,
    store,
    breaker,
    transitions,
    other(ownerId = 'p2') {
      const otherDb = openDatabase(file);
      cleanups.push(() => otherDb.close());
      return new CircuitBreaker(new SqliteBreakerStore(otherDb, clock), key, s, { clock, ownerId });
    },
  };
}

/** Sends `n` calls through the breaker with the given outcome, as the worker loop would. */
async function calls(b: CircuitBreaker, n: number, outcome: CallOutcome): Promise<void> {
  for (let i = 0; i < n; i++) {
    const d = await b.acquire();
    assert.equal(d.allowed, true, `call ${i + 1} of ${n} should be allowed`);
    await b.record(outcome, d.allowed ? d : plain);
  }
}

async function trip(f: Fixture): Promise<void> {
  await calls(f.breaker, 10, fail());
  assert.equal((await f.breaker.status()).state, 'open');
}

describe('closed -> open', () => {
  test('opens when half of at least 10 calls in the window failed', async () => {
    const f = setup();
    await calls(f.breaker, 5, ok);
    await calls(f.breaker, 4, fail());
    assert.equal((await f.breaker.status()).state, 'closed');
    await calls(f.breaker, 1, fail());
    const s = await f.breaker.status();
    assert.equal(s.state, 'open');
    assert.equal(s.calls, 10);
    assert.equal(s.failures, 5);
    assert.equal(s.failureRatio, 0.5);
    assert.equal(s.openedAt, f.clock.now());
    assert.equal(s.retryAtMs, f.clock.now() + 30_000);
    assert.equal(s.consecutiveOpens, 1);
    assert.deepEqual(s.lastError, {
      kind: 'server',
      message: 'provider returned HTTP 503 Service Unavailable',
      at: f.clock.now(),
    });
    assert.deepEqual(
      f.transitions.map((t) => [t.from, t.to]),
      [['closed', 'open']],
    );
    assert.equal(
      f.transitions[0]?.cause,
      '5 of 10 calls failed in the last 30.0s (ratio 0.50 >= 0.5); last: server: provider returned HTTP 503 Service Unavailable',
    );
  });

  test('does not open before the minimum throughput, even at 100% failures', async () => {
    const f = setup();
    await calls(f.breaker, 9, fail());
    assert.equal((await f.breaker.status()).state, 'closed');
    assert.equal((await f.breaker.status()).failures, 9);
    await calls(f.breaker, 1, fail());
    assert.equal((await f.breaker.status()).state, 'open');
  });

  test('stays closed below the failure ratio', async () => {
    const f = setup();
    await calls(f.breaker, 11, ok);
    await calls(f.breaker, 10, fail());
    const s = await f.breaker.status();
    assert.equal(s.state, 'closed');
    assert.equal(s.calls, 21);
    assert.equal(s.failures, 10);
  });

  test('the window slides: failures older than the sampling window are forgotten', async () => {
    const f = setup();
    await calls(f.breaker, 9, fail());
    await f.clock.advance(30_000);
    await calls(f.breaker, 1, fail());
    const s = await f.breaker.status();
    assert.equal(s.state, 'closed');
    assert.equal(s.calls, 1);
    assert.equal(s.failures, 1);
  });

  test('failures still inside the window count', async () => {
    const f = setup();
    await calls(f.breaker, 9, fail());
    await f.clock.advance(29_999);
    await calls(f.breaker, 1, fail());
    assert.equal((await f.breaker.status()).state, 'open');
  });

  test('429s are not counted at all', async () => {
    const f = setup();
    await calls(f.breaker, 30, fail(429));
    const s = await f.breaker.status();
    assert.equal(s.state, 'closed');
    assert.equal(s.calls, 0);
    assert.equal(s.lastError, null);
  });

  test('auth, quota, bad requests and invalid responses count as calls that did not fail', async () => {
    const f = setup();
    await calls(f.breaker, 3, fail(401));
    await calls(f.breaker, 3, fail(400));
    await calls(f.breaker, 3, fail(402));
    await calls(f.breaker, 3, {
      ok: false,
      error: new ProviderError('invalid_response', 'bad json', { retryable: true }),
    });
    await calls(f.breaker, 11, fail(500));
    const s = await f.breaker.status();
    assert.equal(s.calls, 23);
    assert.equal(s.failures, 11);
    assert.equal(s.state, 'closed');
  });

  test('timeouts and network errors are failures', async () => {
    const f = setup();
    await calls(f.breaker, 5, {
      ok: false,
      error: new ProviderError('timeout', 'timed out', { retryable: true }),
    });
    await calls(f.breaker, 5, {
      ok: false,
      error: new ProviderError('network', 'ECONNRESET', { retryable: true }),
    });
    assert.equal((await f.breaker.status()).state, 'open');
  });
});

describe('open and half-open', () => {
  test('open rejects at once with the time the break ends', async () => {
    const f = setup();
    await trip(f);
    const opened = f.clock.now();
    await f.clock.advance(29_999);
    const d = await f.breaker.acquire();
    assert.equal(d.allowed, false);
    assert.ok(!d.allowed);
    assert.equal(d.state, 'open');
    assert.equal(d.retryAtMs, opened + 30_000);
    assert.match(d.reason, /^circuit open: 10 of 10 calls failed in the last 30.0s/);
  });

  test('after the break exactly one probe is allowed; the next caller is told to ask again soon', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    assert.deepEqual(await f.breaker.acquire(), { allowed: true, probe: true });
    const again = await f.breaker.acquire();
    assert.deepEqual(again, {
      allowed: false,
      state: 'half_open',
      retryAtMs: f.clock.now() + 1000,
      reason: 'circuit half-open: a probe call from p1 is testing the provider',
    });
    assert.equal((await f.other().acquire()).allowed, false);
  });

  test('a successful probe closes the breaker and resets the statistics', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const probe = await f.breaker.acquire();
    await f.breaker.record(ok, probe.allowed ? probe : plain);
    const s = await f.breaker.status();
    assert.equal(s.state, 'closed');
    assert.equal(s.calls, 0);
    assert.equal(s.failures, 0);
    assert.equal(s.consecutiveOpens, 0);
    assert.equal(s.openedAt, null);
    assert.deepEqual(await f.breaker.acquire(), { allowed: true, probe: false });
    assert.deepEqual(
      f.transitions.map((t) => `${t.from}->${t.to}: ${t.cause}`),
      [
        `closed->open: ${f.transitions[0]?.cause}`,
        'open->half_open: break of 30.0s ended; p1 probes',
        'half_open->closed: probe succeeded',
      ],
    );
    // A fresh window: nine new failures are not enough to open again.
    await calls(f.breaker, 9, fail());
    assert.equal((await f.breaker.status()).state, 'closed');
  });

  test('a bad request on the probe also closes: the provider answered', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const probe = await f.breaker.acquire();
    await f.breaker.record(fail(400), probe.allowed ? probe : plain);
    assert.equal((await f.breaker.status()).state, 'closed');
  });

  test('each failed probe re-opens with a break 1.5 times longer, capped at 5 minutes', async () => {
    const f = setup();
    await trip(f);
    const breaks: number[] = [];
    for (let i = 0; i < 8; i++) {
      const s = await f.breaker.status();
      breaks.push((s.retryAtMs ?? 0) - (s.openedAt ?? 0));
      await f.clock.advance((s.retryAtMs ?? 0) - f.clock.now());
      const probe = await f.breaker.acquire();
      assert.deepEqual(probe, { allowed: true, probe: true });
      await f.breaker.record(fail(), probe);
    }
    assert.deepEqual(breaks, [30_000, 45_000, 67_500, 101_250, 151_875, 227_813, 300_000, 300_000]);
    assert.equal((await f.breaker.status()).consecutiveOpens, 9);
    assert.match(
      (await f.breaker.status()).reason ?? '',
      /^probe failed: server: provider returned HTTP 503/,
    );
  });

  test('break base and cap are configurable', async () => {
    const f = setup({ ...settings, breakDurationMs: 1000, maxBreakDurationMs: 2000 });
    await trip(f);
    const s1 = await f.breaker.status();
    assert.equal((s1.retryAtMs ?? 0) - f.clock.now(), 1000);
    await f.clock.advance(1000);
    await f.breaker.record(fail(), (await f.breaker.acquire()) as { probe: boolean });
    await f.clock.advance(1500);
    await f.breaker.record(fail(), (await f.breaker.acquire()) as { probe: boolean });
    assert.equal(((await f.breaker.status()).retryAtMs ?? 0) - f.clock.now(), 2000);
  });

  test('an expired probe lease lets another process probe, and the late prober is ignored', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const p2 = f.other('p2');
    const mine = await f.breaker.acquire();
    assert.deepEqual(mine, { allowed: true, probe: true });
    assert.equal((await p2.acquire()).allowed, false);
    await f.clock.advance(settings.probeLeaseMs - 1);
    assert.equal((await p2.acquire()).allowed, false);
    await f.clock.advance(1);
    const theirs = await p2.acquire();
    assert.deepEqual(theirs, { allowed: true, probe: true });
    // p1's probe finally fails; p2 holds the probe now, so it is p2's outcome that decides.
    await f.breaker.record(fail(), mine);
    assert.equal((await f.breaker.status()).state, 'half_open');
    assert.equal((await f.breaker.status()).probe?.owner, 'p2');
    await p2.record(ok, theirs);
    assert.equal((await f.breaker.status()).state, 'closed');
    assert.deepEqual(
      (await breakerHistory(f.store, 10)).map((t) => t.cause),
      [
        'probe succeeded',
        'probe lease of p1 expired; p2 probes',
        'break of 30.0s ended; p1 probes',
        f.transitions[0]?.cause,
      ],
    );
  });

  test('a probe answered with 429 gives the probe up for the next caller', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const probe = await f.breaker.acquire();
    await f.breaker.record(fail(429), probe.allowed ? probe : plain);
    assert.equal((await f.breaker.status()).state, 'half_open');
    assert.deepEqual(await f.other().acquire(), { allowed: true, probe: true });
  });

  test('calls that were in flight when the breaker opened do not count', async () => {
    const f = setup();
    await trip(f);
    for (let i = 0; i < 5; i++) await f.breaker.record(fail(), plain);
    assert.equal((await f.breaker.status()).failures, 10);
  });
});

describe('the asynchronous facade', () => {
  test('overlapping acquires in one process after the break hand out exactly one probe', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const decisions = await Promise.all([f.breaker.acquire(), f.breaker.acquire(), f.breaker.acquire()]);
    assert.deepEqual(
      decisions.map((d) => (d.allowed ? `probe ${d.probe}` : d.state)),
      ['probe true', 'half_open', 'half_open'],
    );
  });

  test('release hands an unsent probe to the next caller at once', async () => {
    const f = setup();
    await trip(f);
    await f.clock.advance(30_000);
    const probe = await f.breaker.acquire();
    await f.breaker.release(probe.allowed ? probe : plain);
    assert.deepEqual(await f.other('p2').acquire(), { allowed: true, probe: true });
    assert.equal((await breakerHistory(f.store, 1))[0]?.cause, 'probe lease of p1 expired; p2 probes');
  });

  test('a breaker removed by hand while a run goes on comes back closed and counts again', async () => {
    const f = setup();
    await trip(f);
    assert.equal(await removeBreaker(f.store, key), true);
    await f.clock.advance(250);
    await calls(f.breaker, 1, fail());
    const s = await f.breaker.status();
    assert.deepEqual([s.state, s.calls, s.failures], ['closed', 1, 1]);
  });
});

describe('shared between processes', () => {
  test('an isolate from another process is obeyed within 250 ms and holds until closed by hand', async () => {
    const f = setup();
    assert.deepEqual(await f.breaker.acquire(), { allowed: true, probe: false });
    await f.other().isolate('provider maintenance');
    await f.clock.advance(250);
    assert.deepEqual(await f.breaker.acquire(), {
      allowed: false,
      state: 'isolated',
      retryAtMs: null,
      reason: 'circuit isolated by hand: provider maintenance',
    });
    await f.clock.advance(24 * 3_600_000);
    assert.equal((await f.breaker.acquire()).allowed, false);
    await f.other('p3').close();
    assert.deepEqual(await f.breaker.acquire(), { allowed: true, probe: false });
    assert.deepEqual(
      (await breakerHistory(f.store, 10)).map((t) => [t.from, t.to, t.cause]),
      [
        ['isolated', 'closed', 'closed by hand'],
        ['closed', 'isolated', 'isolated by hand: provider maintenance'],
      ],
    );
  });

  test('a breaker opened by one process rejects calls in another', async () => {
    const f = setup();
    const p2 = f.other();
    await trip(f);
    await f.clock.advance(250);
    const d = await p2.acquire();
    assert.equal(d.allowed, false);
    assert.equal(d.allowed === false && d.state, 'open');
  });

  test('outcomes from every process fill the same window', async () => {
    const f = setup();
    const p2 = f.other();
    await calls(f.breaker, 5, fail());
    await calls(p2, 5, fail());
    assert.equal((await f.breaker.status()).state, 'open');
  });

  test('closing by hand resets the window and the break growth', async () => {
    const f = setup();
    await trip(f);
    await f.breaker.close();
    const s = await f.breaker.status();
    assert.equal(s.state, 'closed');
    assert.equal(s.calls, 0);
    assert.equal(s.consecutiveOpens, 0);
    await trip(f);
    assert.equal(((await f.breaker.status()).retryAtMs ?? 0) - f.clock.now(), 30_000);
  });

  test('history keeps the last 500 transitions', async () => {
    const f = setup();
    for (let i = 0; i < 260; i++) {
      await f.breaker.isolate(`round ${i}`);
      await f.breaker.close();
    }
    const all = await breakerHistory(f.store, 1000);
    assert.equal(all.length, 500);
    assert.equal(all[0]?.cause, 'closed by hand');
    assert.equal(all[1]?.cause, 'isolated by hand: round 259');
  });

  test('listBreakers shows every key, most recently active first', async () => {
    const f = setup();
    const second = new CircuitBreaker(f.store, 'https://other/v1|m|nokey', settings, {
      clock: f.clock,
      ownerId: 'p1',
    });
    await f.clock.advance(1000);
    await calls(second, 1, fail());
    assert.deepEqual(
      (await listBreakers(f.store)).map((s) => [s.key, s.lastActiveAt]),
      [
        ['https://other/v1|m|nokey', f.clock.now()],
        [key, f.clock.now() - 1000],
      ],
    );
  });
});

describe('circuitOpenError', () => {
  test('says why and when to resume, exit 3', async () => {
    const f = setup();
    await trip(f);
    const d = await f.breaker.acquire();
    assert.ok(!d.allowed);
    const e = circuitOpenError(key, d, f.clock.now());
    assert.equal(e.kind, 'circuit_open');
    assert.equal(e.exitCode, 3);
    assert.equal(e.retryAfterMs, 30_000);
    assert.match(e.message, /next probe allowed at 2026-01-01T00:00:30\.000Z \(in 30\.0s\)$/);
    assert.equal(
      e.hint,
      'run the same command again after 2026-01-01T00:00:30.000Z to resume, or `flashcards breaker close` if the provider is back',
    );
  });
});

test('rejects nonsense settings with the value received', () => {
  const f = setup();
  assert.throws(
    () =>
      new CircuitBreaker(f.store, key, { ...settings, failureRatio: 1.5 }, { clock: f.clock, ownerId: 'x' }),
    /breaker failureRatio must be in \(0, 1\], got 1.5/,
  );
});

describe('success batching', () => {
  test('successes reach the shared window within one state-cache period, and before any failure is judged', async () => {
    const clock = new FakeClock();
    const dir = mkdtempSync(join(tmpdir(), 'fc-'));
    const db = openDatabase(join(dir, 'state.db'));
    const store = new SqliteBreakerStore(db, clock);
    const a = new CircuitBreaker(
      store,
      'k',
      { ...defaultBreakerSettings, minThroughput: 4 },
      { clock, ownerId: 'a' },
    );
    const b = new CircuitBreaker(
      store,
      'k',
      { ...defaultBreakerSettings, minThroughput: 4 },
      { clock, ownerId: 'b' },
    );
    for (let i = 0; i < 3; i++) await a.record({ ok: true }, { probe: false });
    assert.equal((await b.status()).calls, 0, 'not yet written');
    await clock.advance(300);
    await a.record({ ok: true }, { probe: false });
    assert.equal((await b.status()).calls, 4, 'written once the period passed');
    // 1 failure of 5 calls: below the ratio, so the earlier successes must have been counted.
    await a.record({ ok: true }, { probe: false });
    await a.record(
      { ok: false, error: new ProviderError('server', 'boom', { retryable: true }) },
      { probe: false },
    );
    assert.equal((await b.status()).state, 'closed');
    assert.equal((await b.status()).calls, 6);
    db.close();
  });
});

describe('failure streaks', () => {
  test('twice minThroughput failures in a row open the breaker even when the window is full of earlier successes', async () => {
    const clock = new FakeClock();
    const dir = mkdtempSync(join(tmpdir(), 'fc-'));
    const db = openDatabase(join(dir, 'state.db'));
    const b = new CircuitBreaker(new SqliteBreakerStore(db, clock), 'k', defaultBreakerSettings, {
      clock,
      ownerId: 'a',
    });
    for (let i = 0; i < 300; i++) await b.record({ ok: true }, { probe: false });
    const boom = new ProviderError('server', 'HTTP 503', { retryable: true });
    for (let i = 0; i < 19; i++) await b.record({ ok: false, error: boom }, { probe: false });
    assert.equal((await b.status()).state, 'closed');
    await b.record({ ok: false, error: boom }, { probe: false });
    assert.equal((await b.status()).state, 'open');
    db.close();
  });
});
