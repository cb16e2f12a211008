import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';
import { CircuitBreaker, defaultBreakerSettings } from '../src/resilience/index.ts';

const script = join(import.meta.dirname, 'support', 'breaker-isolate.ts');

test('a breaker isolated by another OS process rejects our next acquire within a second', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-'));
  const file = join(dir, 'state.db');
  const db = openDatabase(file);
  t.after(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const key = 'http://127.0.0.1:9/v1|mock|nokey';
  const breaker = new CircuitBreaker(db, key, defaultBreakerSettings, {
    clock: systemClock,
    ownerId: 'parent',
  });
  assert.deepEqual(breaker.acquire(), { allowed: true, probe: false });

  const child = spawn(process.execPath, [script, file, key, 'maintenance window'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

  // The worker loop keeps acquiring while the other process acts; find the first rejection.
  let rejectedAt = 0;
  const giveUp = Date.now() + 15_000;
  while (Date.now() < giveUp) {
    const d = breaker.acquire();
    if (!d.allowed) {
      rejectedAt = Date.now();
      assert.equal(d.state, 'isolated');
      assert.equal(d.reason, 'circuit isolated by hand: maintenance window');
      break;
    }
    await sleep(10);
  }
  assert.equal(await exited, 0, `child failed: ${stderr}`);
  const isolatedAt = Number(/^isolated (\d+)$/m.exec(stdout)?.[1]);
  assert.ok(rejectedAt > 0, 'the parent never saw the isolate');
  assert.ok(rejectedAt - isolatedAt <= 1000, `seen ${rejectedAt - isolatedAt} ms after the isolate`);
});
