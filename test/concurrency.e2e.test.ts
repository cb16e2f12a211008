import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

const API_KEY = 'sk-test-concurrency-0123456789';

function words(home: string, n: number): string {
  const file = join(home, 'words.txt');
  writeFileSync(file, `${Array.from({ length: n }, (_, i) => `낱말${i}`).join('\n')}\n`);
  return file;
}

interface Summary {
  exitCode: number;
  items: { succeeded: number };
  concurrency: { final: number; peak: number; pinned: boolean };
}

describe('how many requests a run keeps in flight', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer({ seed: 11, rpm: 600 });
  });
  after(async () => {
    await server.close();
  });

  test('without --concurrency the pool grows past its start while answers are slow to come', async () => {
    const home = tempDir();
    server.clear();
    // Answers are held, as a slow model would: the run must open more requests meanwhile.
    server.set({ hold: true });
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
    });
    const run = startCli(
      ['process', words(home, 40), '-o', join(home, 'deck.tsv'), '--rpm', '600', '--json'],
      {
        env,
      },
    );
    try {
      await server.until(() => server.stats.inFlight >= 16);
    } finally {
      server.set({ hold: false });
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as Summary;
    assert.equal(summary.items.succeeded, 40);
    assert.equal(summary.concurrency.pinned, false);
    assert.ok(summary.concurrency.peak >= 16, `peak ${summary.concurrency.peak}`);
  });

  test('--concurrency 8 never has more than 8 requests in flight', async () => {
    const home = tempDir();
    server.clear();
    server.set({ latencyMs: [20, 60] });
    try {
      const env = cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: API_KEY,
        FLASHCARDS_BASE_URL: server.url,
      });
      const r = await runCli(
        ['process', words(home, 40), '-o', join(home, 'deck.tsv'), '--concurrency', '8', '--json'],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as Summary;
      assert.deepEqual(summary.concurrency, { final: 8, peak: 8, pinned: true });
      assert.ok(server.stats.maxInFlight <= 8, `${server.stats.maxInFlight} in flight at once`);
    } finally {
      server.set({ latencyMs: 0 });
    }
  });
});
