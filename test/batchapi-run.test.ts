import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestLine } from '../src/batchapi/adapter.ts';
import { checkBatchApiProvider } from '../src/batchapi/provider-check.ts';
import { chunks } from '../src/batchapi/run.ts';
import { statusLines } from '../src/commands/process/batch-api-status.ts';

const line = (i: number, pad = 0): RequestLine => ({
  customId: `${i}:cards:1`,
  body: { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(pad) }] },
});

describe('batch API submissions', () => {
  test('a file holds at most maxRequests lines', () => {
    const lines = Array.from({ length: 7 }, (_, i) => line(i));
    const got = chunks(lines, { maxRequests: 3, maxBytes: 1 << 30 });
    assert.deepEqual(
      got.map((c) => c.length),
      [3, 3, 1],
    );
    assert.deepEqual(
      got.flat().map((l) => l.customId),
      lines.map((l) => l.customId),
    );
  });

  test('a file holds at most maxBytes of JSONL; a line bigger than that goes alone', () => {
    const lines = [line(0, 300), line(1, 300), line(2, 5000), line(3, 10)];
    const got = chunks(lines, { maxRequests: 100, maxBytes: 1000 });
    assert.deepEqual(
      got.map((c) => c.map((l) => l.customId)),
      [['0:cards:1', '1:cards:1'], ['2:cards:1'], ['3:cards:1']],
    );
  });

  test('providers: openai and groq have a batch API; a custom one when it says so; ollama never', () => {
    const off = { available: false, discount: 0.5, maxRequests: 1, maxBytes: 1024 };
    assert.doesNotThrow(() => checkBatchApiProvider({ provider: 'openai', batchApi: off }));
    assert.doesNotThrow(() => checkBatchApiProvider({ provider: 'groq', batchApi: off }));
    assert.throws(
      () => checkBatchApiProvider({ provider: 'custom', batchApi: off }),
      (e: unknown) =>
        e instanceof Error &&
        /custom has none/.test(e.message) &&
        /batchApi\.available: true/.test((e as { hint?: string }).hint ?? ''),
    );
    assert.doesNotThrow(() =>
      checkBatchApiProvider({ provider: 'custom', batchApi: { ...off, available: true } }),
    );
    assert.throws(
      () => checkBatchApiProvider({ provider: 'ollama', batchApi: { ...off, available: true } }),
      (e: unknown) =>
        e instanceof Error &&
        /ollama has none/.test(e.message) &&
        (e as { exitCode?: number }).exitCode === 2,
    );
  });

  test('the terminal shows each submission out: remote id, state, counts and age', () => {
    const text = statusLines(
      [
        {
          tag: 't',
          batchId: 'b',
          stage: 'cards',
          state: 'created',
          fileName: 'f',
          remoteId: 'batch_1',
          remoteState: 'in_progress',
          counts: { total: 40, completed: 12, failed: 1 },
          jobs: [],
          bytes: 0,
          createdAt: 0,
          updatedAt: 0,
        },
      ],
      180_000,
    );
    assert.equal(text, '  cards: batch_1 in_progress, 12/40 answered, 1 failed, out for 3m00s\n');
  });
});
