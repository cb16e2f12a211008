import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';
import { openDatabase } from '../src/db/open.ts';
import {
  type CallOutcome,
  CircuitBreaker,
  classifyHttpError,
  defaultBreakerSettings,
  defaultRetrySettings,
  RetryPolicy,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';
import type { Bench, BenchRow } from './types.ts';

/** Mean microseconds per call of `fn` over `n` calls, after a warm-up. */
function perCall(n: number, fn: () => void): number {
  for (let i = 0; i < Math.min(1000, n); i++) fn();
  const start = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - start) * 1000) / n;
}

/** The same for an asynchronous `fn`, awaited one call after another as the worker loop does. */
async function perAwaitedCall(n: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(1000, n); i++) await fn();
  const start = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - start) * 1000) / n;
}

const round = (us: number): number => Math.round(us * 100) / 100;

/** Cost of the breaker on the request path, on a real WAL state.db in a temp dir. */
export const bench: Bench = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-bench-'));
  const db = openDatabase(join(dir, 'state.db'));
  try {
    const ok: CallOutcome = { ok: true };
    const serverError = classifyHttpError(503, '', new Headers(), 0);
    const failure: CallOutcome = { ok: false, error: serverError };
    const store = new SqliteBreakerStore(db, systemClock);
    const healthy = new CircuitBreaker(store, 'bench|healthy|nokey', defaultBreakerSettings, {
      clock: systemClock,
      ownerId: 'bench',
    });
    // Never opens, so every failure takes the full closed-state path (count, last error, window sum).
    const failing = new CircuitBreaker(
      store,
      'bench|failing|nokey',
      { ...defaultBreakerSettings, minThroughput: 1e9 },
      { clock: systemClock, ownerId: 'bench' },
    );
    const noCache = new CircuitBreaker(store, 'bench|healthy|nokey', defaultBreakerSettings, {
      clock: systemClock,
      ownerId: 'bench',
      stateCacheMs: 0,
    });
    const retry = new RetryPolicy(defaultRetrySettings, { random: seededRandom(1) });
    const plain = { probe: false };
    const rows: BenchRow[] = [
      {
        name: 'breaker acquire (cached, closed)',
        value: round(await perAwaitedCall(200_000, () => healthy.acquire())),
        unit: 'µs/op',
      },
      {
        name: 'breaker acquire (state re-read)',
        value: round(await perAwaitedCall(20_000, () => noCache.acquire())),
        unit: 'µs/op',
        note: 'what a cache miss costs, every 250 ms',
      },
      {
        name: 'breaker record success',
        value: round(await perAwaitedCall(20_000, () => healthy.record(ok, plain))),
        unit: 'µs/op',
      },
      {
        name: 'breaker record failure',
        value: round(await perAwaitedCall(20_000, () => failing.record(failure, plain))),
        unit: 'µs/op',
      },
      {
        name: 'retry decide',
        value: round(
          perCall(200_000, () => {
            retry.decide(serverError, 1, { nowMs: 0 });
            retry.onSuccess();
          }),
        ),
        unit: 'µs/op',
      },
    ];
    return rows;
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
};
