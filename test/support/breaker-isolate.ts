/**
 * Another process for the multi-process breaker test: isolates the breaker `key` in the state
 * database `file`, then prints the wall-clock time it did so.
 * Usage: node test/support/breaker-isolate.ts <state.db> <key> <reason>
 */
import { systemClock } from '../../src/core/clock.ts';
import { openDatabase } from '../../src/db/open.ts';
import { CircuitBreaker, defaultBreakerSettings } from '../../src/resilience/index.ts';

const [file, key, reason] = process.argv.slice(2);
if (!file || !key) throw new Error('usage: breaker-isolate.ts <state.db> <key> [reason]');
const db = openDatabase(file);
new CircuitBreaker(db, key, defaultBreakerSettings, {
  clock: systemClock,
  ownerId: `child-${process.pid}`,
}).isolate(reason ?? '');
db.close();
process.stdout.write(`isolated ${Date.now()}\n`);
