import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openInput } from '../src/input/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'fc-input-stream-'));

test('a 100,000-row CSV streams item by item without holding the file in memory', async () => {
  const file = join(dir, 'big.csv');
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const header = 'position,term,type,notes\n';
  out.write(header);
  hash.update(header);
  for (let i = 1; i <= 100_000; i++) {
    const row = `${i},단어${i},noun,"a note, with a comma, for row ${i} ${'가나다라마바사'.repeat(3)}"\n`;
    hash.update(row);
    if (!out.write(row)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
  assert.ok(statSync(file).size > 8_000_000);

  const baseline = process.memoryUsage().heapUsed;
  let peak = baseline;
  const source = await openInput(file);
  let count = 0;
  let last = { index: -1, line: -1, term: '' };
  for await (const item of source.items) {
    count++;
    last = { index: item.index, line: item.line, term: item.term };
    if (count % 5000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
  }
  assert.equal(count, 100_000);
  assert.deepEqual(last, { index: 99_999, line: 100_001, term: '단어100000' });
  assert.deepEqual(source.stats(), { items: 100_000, skipped: 0 });
  assert.equal(source.digest(), hash.digest('hex'));
  const growthMb = (peak - baseline) / 1024 / 1024;
  assert.ok(growthMb < 60, `heap grew by ${growthMb.toFixed(1)} MB while streaming`);
});
