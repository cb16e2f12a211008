import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const worker = fileURLToPath(new URL('./support/limiter-worker.ts', import.meta.url));

test('three OS processes on one database admit at most rate x W + burst (+1) in every window', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')), 'state.db');
  const rpm = 1200;
  const burst = 20;
  // A shared start in the future, so all three are running before the first acquire.
  const startAt = Date.now() + 1000;
  const results = await Promise.all(
    ['a', 'b', 'c'].map(async (id) => {
      const args = {
        mode: 'admit',
        file,
        key: 'mp|model|key',
        rpm,
        burstSeconds: 1,
        shards: 'auto',
        startAt,
        durationMs: 2000,
        id,
      };
      const { stdout } = await run(process.execPath, [worker, JSON.stringify(args)], { timeout: 15_000 });
      return (JSON.parse(stdout) as { admitted: number[] }).admitted;
    }),
  );
  const times = results.flat().sort((a, b) => a - b);
  assert.ok(times.length > burst, `only ${times.length} admissions`);
  assert.ok(
    results.every((r) => r.length > 0),
    'every process got some of the budget',
  );
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      const windowMs = (times[j] ?? 0) - (times[i] ?? 0);
      worst = Math.max(worst, j - i + 1 - ((rpm * windowMs) / 60_000 + burst));
    }
  }
  assert.ok(worst <= 1, `a window admitted ${worst.toFixed(2)} more than rate x W + burst`);
});
