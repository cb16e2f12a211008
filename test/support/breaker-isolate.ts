/**
 * Another OS process for the multi-process breaker tests: acts on the breaker `key` in the state
 * database `file` through its own connection, on a fake clock set to `nowMs`, and prints what it
 * did or saw as one JSON line, so the test waits on this process's answer and never on real time.
 * Usage: node test/support/breaker-isolate.ts <state.db> <key> <nowMs> isolate <reason>
 *        node test/support/breaker-isolate.ts <state.db> <key> <nowMs> acquire
 */
import { FakeClock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/open.ts';
import { CircuitBreaker, defaultBreakerSettings, SqliteBreakerStore } from '../../src/resilience/index.ts';

const [file, key, nowMs, action, reason] = process.argv.slice(2);
if (!file || !key || !nowMs || (action !== 'isolate' && action !== 'acquire')) {
  throw new Error('usage: breaker-isolate.ts <state.db> <key> <nowMs> isolate <reason> | acquire');
}
const clock = new FakeClock(Number(nowMs));
const db = openDatabase(file);
const breaker = new CircuitBreaker(new SqliteBreakerStore(db, clock), key, defaultBreakerSettings, {
  clock,
  ownerId: `child-${process.pid}`,
});
try {
  if (action === 'isolate') {
    await breaker.isolate(reason ?? '');
    process.stdout.write(`${JSON.stringify({ isolated: true })}\n`);
  } else {
    process.stdout.write(
      `${JSON.stringify({ decision: await breaker.acquire(), owner: `child-${process.pid}` })}\n`,
    );
  }
} finally {
  db.close();
}
