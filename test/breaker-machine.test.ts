import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProviderError } from '../src/core/errors.ts';
import {
  announced,
  type BreakerSettings,
  breakDurationMs,
  breakerVerdict,
  type CallOutcome,
  type Circuit,
  checkBreakerSettings,
  close,
  decide,
  defaultBreakerSettings,
  isolate,
  open,
  releaseProbe,
  settleProbe,
  takeProbe,
  trip,
  windowBucket,
} from '../src/resilience/breaker-machine.ts';

const settings: BreakerSettings = defaultBreakerSettings;
const t0 = Date.UTC(2026, 0, 1);
const closed: Circuit = { state: 'closed' };
const opened: Circuit = { state: 'open', openedAt: t0, retryAt: t0 + 30_000, opens: 1, reason: 'tripped' };
const probing = (owner: string, until = t0 + 120_000): Circuit => ({
  state: 'half_open',
  openedAt: t0,
  opens: 1,
  probe: { owner, until },
  reason: 'tripped',
});
const outcome = (kind: ProviderError['kind'], message = 'HTTP 503'): CallOutcome => ({
  ok: false,
  error: new ProviderError(kind, message, { retryable: true }),
});
const overloaded = { kind: 'server', message: 'HTTP 503' };

describe('decide', () => {
  test('closed allows a plain call', () => {
    assert.deepEqual(decide(closed, t0), { allowed: true, probe: false });
  });

  test('open rejects until the break ends, then offers the probe', () => {
    assert.deepEqual(decide(opened, t0 + 29_999), {
      allowed: false,
      state: 'open',
      retryAtMs: t0 + 30_000,
      reason: 'circuit open: tripped',
    });
    assert.equal(decide(opened, t0 + 30_000), 'probe');
  });

  test('half-open rejects while the lease runs, asking again within a second, then offers the probe', () => {
    assert.deepEqual(decide(probing('p1', t0 + 90_000), t0 + 30_000), {
      allowed: false,
      state: 'half_open',
      retryAtMs: t0 + 31_000,
      reason: 'circuit half-open: a probe call from p1 is testing the provider',
    });
    assert.equal(
      (decide(probing('p1', t0 + 90_000), t0 + 89_500) as { retryAtMs: number }).retryAtMs,
      t0 + 90_000,
    );
    assert.equal(decide(probing('p1', t0 + 90_000), t0 + 90_000), 'probe');
  });

  test('isolated rejects with no retry time, with or without a reason', () => {
    assert.deepEqual(decide({ state: 'isolated', openedAt: t0, opens: 0, reason: 'maintenance' }, t0 + 1e9), {
      allowed: false,
      state: 'isolated',
      retryAtMs: null,
      reason: 'circuit isolated by hand: maintenance',
    });
    assert.equal(
      (decide({ state: 'isolated', openedAt: t0, opens: 0, reason: null }, t0) as { reason: string }).reason,
      'circuit isolated by hand',
    );
  });
});

describe('takeProbe', () => {
  test('after the break the caller takes the probe for one lease', () => {
    assert.deepEqual(takeProbe(opened, 'p1', t0 + 30_000, 90_000), {
      decision: { allowed: true, probe: true },
      step: { next: probing('p1', t0 + 120_000), cause: 'break of 30.0s ended; p1 probes' },
    });
  });

  test('an expired lease passes the probe to the next caller', () => {
    const r = takeProbe(probing('p1', t0 + 120_000), 'p2', t0 + 120_000, 90_000);
    assert.deepEqual(r.step, {
      next: probing('p2', t0 + 210_000),
      cause: 'probe lease of p1 expired; p2 probes',
    });
  });

  test('otherwise the decision stands and nothing changes', () => {
    assert.deepEqual(takeProbe(closed, 'p1', t0, 90_000), { decision: { allowed: true, probe: false } });
    const r = takeProbe(opened, 'p1', t0 + 1000, 90_000);
    assert.equal(r.step, undefined);
    assert.equal(r.decision.allowed, false);
  });
});

describe('settleProbe', () => {
  const now = t0 + 31_000;

  test('any answer from the provider closes, whoever holds the lease now', () => {
    const closing = { next: closed, cause: 'probe succeeded' };
    assert.deepEqual(settleProbe(probing('p1'), 'p1', { ok: true }, now, settings), closing);
    assert.deepEqual(settleProbe(probing('p2'), 'p1', outcome('bad_request'), now, settings), closing);
  });

  test('a failed probe re-opens with a longer break', () => {
    assert.deepEqual(settleProbe(probing('p1'), 'p1', outcome('timeout', 'no answer'), now, settings), {
      next: {
        state: 'open',
        openedAt: now,
        retryAt: now + 45_000,
        opens: 2,
        reason: 'probe failed: timeout: no answer',
      },
      cause: 'probe failed: timeout: no answer',
    });
  });

  test("a late prober's failure is ignored: the new holder's outcome decides", () => {
    assert.equal(settleProbe(probing('p2'), 'p1', outcome('server'), now, settings), undefined);
  });

  test('a 429 or a cancellation gives the probe up at once, unannounced', () => {
    for (const kind of ['rate_limit', 'cancelled'] as const) {
      assert.deepEqual(settleProbe(probing('p1'), 'p1', outcome(kind), now, settings), {
        next: probing('p1', now),
        cause: '',
      });
    }
  });

  test('no longer half-open: the call counts like any other', () => {
    assert.equal(settleProbe(closed, 'p1', outcome('server'), now, settings), 'count');
  });
});

test('releaseProbe hands back only our own unsent probe', () => {
  assert.deepEqual(releaseProbe(probing('p1'), 'p1', t0 + 31_000), {
    next: probing('p1', t0 + 31_000),
    cause: '',
  });
  assert.equal(releaseProbe(probing('p2'), 'p1', t0 + 31_000), undefined);
  assert.equal(releaseProbe(opened, 'p1', t0 + 31_000), undefined);
});

describe('trip', () => {
  test('opens when the failure ratio is reached with enough calls', () => {
    assert.deepEqual(trip(closed, { calls: 10, failures: 5 }, 1, overloaded, t0, settings), {
      next: {
        state: 'open',
        openedAt: t0,
        retryAt: t0 + 30_000,
        opens: 1,
        reason: '5 of 10 calls failed in the last 30.0s (ratio 0.50 >= 0.5); last: server: HTTP 503',
      },
      cause: '5 of 10 calls failed in the last 30.0s (ratio 0.50 >= 0.5); last: server: HTTP 503',
    });
  });

  test('stays closed below the throughput or the ratio', () => {
    assert.equal(trip(closed, { calls: 9, failures: 9 }, 9, overloaded, t0, settings), undefined);
    assert.equal(trip(closed, { calls: 21, failures: 10 }, 10, overloaded, t0, settings), undefined);
  });

  test('twice minThroughput failures in a row open whatever the window says', () => {
    assert.equal(trip(closed, { calls: 320, failures: 19 }, 19, overloaded, t0, settings), undefined);
    assert.equal(
      trip(closed, { calls: 320, failures: 20 }, 20, overloaded, t0, settings)?.cause,
      '20 calls in a row failed (20 of 320 in the last 30.0s); last: server: HTTP 503',
    );
  });

  test('only a closed breaker trips', () => {
    assert.equal(trip(opened, { calls: 10, failures: 10 }, 30, overloaded, t0, settings), undefined);
  });
});

test('each open after a failed probe lengthens the break 1.5 times, up to the cap', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((n) => breakDurationMs(n, settings)),
    [30_000, 45_000, 67_500, 101_250, 151_875, 227_813, 300_000, 300_000],
  );
  assert.deepEqual(open(opened, t0 + 30_000, 'again', settings).next, {
    state: 'open',
    openedAt: t0 + 30_000,
    retryAt: t0 + 75_000,
    opens: 2,
    reason: 'again',
  });
});

describe('by hand', () => {
  test('isolate keeps when and how often it opened; an empty reason is none', () => {
    assert.deepEqual(isolate(closed, t0, 'maintenance'), {
      next: { state: 'isolated', openedAt: t0, opens: 0, reason: 'maintenance' },
      cause: 'isolated by hand: maintenance',
    });
    assert.deepEqual(isolate(opened, t0 + 5000, ''), {
      next: { state: 'isolated', openedAt: t0, opens: 1, reason: null },
      cause: 'isolated by hand',
    });
  });

  test('close starts over from any state', () => {
    assert.deepEqual(close(), { next: closed, cause: 'closed by hand' });
  });
});

test('a change is announced when the state or the probe holder changes', () => {
  assert.equal(announced(closed, opened), true);
  assert.equal(announced(probing('p1'), probing('p2')), true);
  assert.equal(announced(probing('p1'), probing('p1', t0)), false);
  assert.equal(announced(closed, closed), false);
  const iso: Circuit = { state: 'isolated', openedAt: t0, opens: 0, reason: 'a' };
  assert.equal(announced(iso, { ...iso, reason: 'b' }), false);
});

test('breakerVerdict: only server, timeout and network failures count against the provider', () => {
  assert.equal(breakerVerdict({ ok: true }), 'success');
  const verdicts = Object.fromEntries(
    (
      [
        'server',
        'timeout',
        'network',
        'rate_limit',
        'cancelled',
        'circuit_open',
        'auth',
        'quota',
        'bad_request',
        'invalid_response',
      ] as const
    ).map((kind) => [kind, breakerVerdict(outcome(kind))]),
  );
  assert.deepEqual(verdicts, {
    server: 'failure',
    timeout: 'failure',
    network: 'failure',
    rate_limit: 'ignore',
    cancelled: 'ignore',
    circuit_open: 'ignore',
    auth: 'success',
    quota: 'success',
    bad_request: 'success',
    invalid_response: 'success',
  });
});

test('windowBucket: a ring of ten buckets over the window', () => {
  assert.deepEqual(windowBucket(t0, 30_000), { start: t0, slot: (t0 / 3000) % 10 });
  assert.deepEqual(windowBucket(t0 + 2999, 30_000), windowBucket(t0, 30_000));
  assert.deepEqual(windowBucket(t0 + 30_000, 30_000).slot, windowBucket(t0, 30_000).slot);
  // 25 ms: buckets of 3 ms, nine of them.
  assert.deepEqual(windowBucket(30, 25), { start: 30, slot: 1 });
  assert.deepEqual(windowBucket(5, 1), { start: 5, slot: 0 });
});

test('checkBreakerSettings names the setting and the value received', () => {
  assert.throws(
    () => checkBreakerSettings({ ...settings, minThroughput: 2.5 }),
    /breaker minThroughput must be an integer >= 1, got 2.5/,
  );
  assert.throws(
    () => checkBreakerSettings({ ...settings, maxBreakDurationMs: 1000 }),
    /breaker maxBreakDurationMs must be >= breakDurationMs, got 1000/,
  );
});
