import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ResponseCache } from '../src/cache/index.ts';
import { systemClock } from '../src/core/clock.ts';
import { seededRandom } from '../src/core/random.ts';

const run = promisify(execFile);
const writer = fileURLToPath(new URL('./support/cache-writer.ts', import.meta.url));

test('two processes putting the same and different keys into one new cache.db never fail and leave every row readable', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-'));
  try {
    const file = path.join(dir, 'cache.db');
    const outputs = await Promise.all(
      ['0', '1'].map((id) => run(process.execPath, [writer, file, id, '2', '500'], { timeout: 60_000 })),
    );
    for (const { stdout, stderr } of outputs) {
      assert.equal(stderr, '');
      assert.equal((JSON.parse(stdout) as { puts: number }).puts, 500);
    }
    const cache = ResponseCache.open(
      file,
      { ttlMs: 0, jitter: 0, compressThresholdBytes: 64 },
      { clock: systemClock, random: seededRandom(1) },
    );
    try {
      for (let i = 0; i < 250; i++) {
        const shared = JSON.parse((await cache.get(`shared-${i}`))?.body ?? 'null') as {
          writer: string;
          i: number;
        };
        assert.ok(shared.writer === '0' || shared.writer === '1', `shared-${i} written by ${shared.writer}`);
        assert.equal(shared.i, 2 * i);
        for (const id of ['0', '1']) {
          assert.deepEqual(
            (JSON.parse((await cache.get(`own-${id}-${i}`))?.body ?? 'null') as { writer: string }).writer,
            id,
          );
        }
      }
    } finally {
      await cache.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
