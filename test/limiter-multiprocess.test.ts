import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const worker = fileURLToPath(new URL('./support/limiter-worker.ts', import.meta.url));

/** A worker process: next() is its next JSON line, or a rejection once it exited without one; go() starts it. */
function child(args: Record<string, unknown>) {
  const proc = spawn(process.execPath, [worker, JSON.stringify(args)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout });
  const queue: unknown[] = [];
  const waiting: ((line: unknown) => void)[] = [];
  lines.on('line', (line) => {
    const value: unknown = JSON.parse(line);
    const next = waiting.shift();
    if (next) next(value);
    else queue.push(value);
  });
  const exited = new Promise<never>((_, reject) =>
    proc.on('close', (code) => reject(new Error(`limiter worker exited (${code}) before answering`))),
  );
  exited.catch(() => {});
  return {
    next: (): Promise<unknown> =>
      queue.length > 0
        ? Promise.resolve(queue.shift())
        : Promise.race([new Promise((r) => waiting.push(r)), exited]),
    go: (): void => {
      proc.stdin.end('go\n');
    },
  };
}

// The timeout only ends a hung child; nothing here is decided on the clock.
test('three OS processes on one database admit at most rate x W + burst in every window of their booked send times', {
  timeout: 120_000,
}, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'state.db');
  const rpm = 1200;
  const burst = 20;
  const count = 20;
  const children = ['a', 'b', 'c'].map((id) =>
    child({ mode: 'book', file, key: 'mp|model|key', rpm, burstSeconds: 1, shards: 'auto', count, id }),
  );
  // Every child has opened the database before any books, so all three contend for one budget.
  for (const c of children) assert.deepEqual(await c.next(), { ready: true });
  for (const c of children) c.go();
  const results = await Promise.all(
    children.map(async (c) => ((await c.next()) as { sendAt: number[] }).sendAt),
  );

  assert.deepEqual(
    results.map((r) => r.length),
    [count, count, count],
  );
  // The send times are the ones GCRA booked (the store's clock under its lock): whatever the
  // scheduling, no window between two of them may hold more than rate x W + burst.
  const times = results.flat().sort((a, b) => a - b);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      const windowMs = (times[j] ?? 0) - (times[i] ?? 0);
      worst = Math.max(worst, j - i + 1 - ((rpm * windowMs) / 60_000 + burst));
    }
  }
  assert.ok(worst <= 1e-6, `a window admitted ${worst.toFixed(3)} more than rate x W + burst`);
});
