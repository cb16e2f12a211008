import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import {
  CircuitBreaker,
  classifyHttpError,
  defaultBreakerSettings,
  SqliteBreakerStore,
} from '../src/resilience/index.ts';

const script = join(import.meta.dirname, 'support', 'breaker-isolate.ts');
const key = 'http://127.0.0.1:9/v1|mock|nokey';

/** A state.db in a temp dir and this process's breaker on it, on a fake clock. */
function setup(t: TestContext): { file: string; clock: FakeClock; breaker: CircuitBreaker } {
  const dir = mkdtempSync(join(tmpdir(), 'fc-'));
  const file = join(dir, 'state.db');
  const db = openDatabase(file);
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const clock = new FakeClock();
  const breaker = new CircuitBreaker(new SqliteBreakerStore(db, clock), key, defaultBreakerSettings, {
    clock,
    ownerId: 'parent',
  });
  return { file, clock, breaker };
}

/** Runs the other process to its end and returns the JSON line it printed. */
async function other(file: string, nowMs: number, ...args: string[]): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [script, file, key, String(nowMs), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, `the other process failed: ${stderr}`);
  return JSON.parse(stdout) as Record<string, unknown>;
}

test('a breaker isolated by another OS process rejects our acquires once our 250 ms state cache expires', async (t) => {
  const { file, clock, breaker } = setup(t);
  assert.deepEqual(await breaker.acquire(), { allowed: true, probe: false });

  assert.deepEqual(await other(file, clock.now(), 'isolate', 'maintenance window'), { isolated: true });
  // Within the cache period the closed state read before the isolate still answers...
  await clock.advance(249);
  assert.deepEqual(await breaker.acquire(), { allowed: true, probe: false });
  // ...and the first acquire after it reads the isolate the other process committed.
  await clock.advance(1);
  assert.deepEqual(await breaker.acquire(), {
    allowed: false,
    state: 'isolated',
    retryAtMs: null,
    reason: 'circuit isolated by hand: maintenance window',
  });
});

test('a breaker opened here holds another OS process back until the break ends, then lends it the probe', async (t) => {
  const { file, clock, breaker } = setup(t);
  const overloaded = classifyHttpError(503, '', new Headers(), 0);
  for (let i = 0; i < 10; i++) await breaker.record({ ok: false, error: overloaded }, { probe: false });
  const opened = clock.now();

  const during = await other(file, opened + 29_999, 'acquire');
  assert.deepEqual(during['decision'], {
    allowed: false,
    state: 'open',
    retryAtMs: opened + 30_000,
    reason:
      'circuit open: 10 of 10 calls failed in the last 30.0s (ratio 1.00 >= 0.5); last: server: provider returned HTTP 503 Service Unavailable',
  });

  const after = await other(file, opened + 30_000, 'acquire');
  assert.deepEqual(after['decision'], { allowed: true, probe: true });
  await clock.advance(30_000);
  const status = await breaker.status();
  assert.equal(status.state, 'half_open');
  assert.deepEqual(status.probe, {
    owner: after['owner'],
    until: opened + 30_000 + defaultBreakerSettings.probeLeaseMs,
  });
  assert.deepEqual((await breaker.acquire()).allowed, false);
});
