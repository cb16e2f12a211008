/**
 * Issue 17's scenario on the real clock: 100 items of the two-stage vocabulary pipeline through the
 * mock provider's batch endpoints, each batch completing 2 s after creation with 5% of its lines
 * failed into the error file and the output shuffled; the same `process --batch-api` command run
 * every 1.5 s, as cron would (faster), until it exits 0. Reports runs, batches created, polls, lines
 * submitted, synchronous requests (none expected) and the time to completion.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliEnv, runCli, tempDir } from '../test/support/cli.ts';
import { startMockServer } from '../test/support/mock-server.ts';
import { koreanWords } from '../test/support/word-lists.ts';
import type { BenchRow } from './types.ts';

const ITEMS = 100;

export async function bench(): Promise<BenchRow[]> {
  const server = await startMockServer({
    seed: 9,
    batchCompleteAfterMs: 2000,
    batchErrorRate: 0.05,
    batchShuffle: true,
  });
  try {
    const dir = tempDir('fc-bench-batchapi-');
    const input = koreanWords(dir, ITEMS).path;
    const env = cliEnv({
      FLASHCARDS_HOME: join(dir, 'home'),
      FLASHCARDS_API_KEY: 'sk-bench-0123456789',
      FLASHCARDS_BASE_URL: server.url,
      FLASHCARDS_PROVIDER: 'custom',
      FLASHCARDS_MODEL: 'gpt-4o-mini',
      FLASHCARDS_BATCH_API_AVAILABLE: 'true',
    });
    const started = Date.now();
    const exits: number[] = [];
    for (let run = 0; run < 60; run++) {
      const r = await runCli(['process', input, '-o', join(dir, 'deck.tsv'), '--batch-api', '--quiet'], {
        env,
      });
      exits.push(r.code ?? -1);
      if (r.code !== 75) break;
      await sleep(1500);
    }
    const seconds = (Date.now() - started) / 1000;
    const chat = server.requests.filter((q) => q.path.endsWith('/chat/completions')).length;
    const note = `exits ${exits.slice(0, -1).every((c) => c === 75) ? `75 x${exits.length - 1}, then ${exits.at(-1)}` : exits.join(',')}`;
    return [
      {
        name: `batch API, ${ITEMS} items x 2 stages, 2 s batches, 5% failed lines: time to completion`,
        value: seconds,
        unit: 's',
        note,
      },
      { name: 'batch API: runs of the command (every 1.5 s)', value: exits.length, unit: 'runs' },
      { name: 'batch API: remote batches created', value: server.batch.batches.length, unit: 'batches' },
      { name: 'batch API: polls (GET /batches/{id})', value: server.batch.polls.length, unit: 'polls' },
      {
        name: 'batch API: request lines submitted (200 jobs)',
        value: server.batch.linesSubmitted,
        unit: 'lines',
      },
      { name: 'batch API: synchronous chat requests', value: chat, unit: 'requests' },
    ];
  } finally {
    await server.close();
  }
}
