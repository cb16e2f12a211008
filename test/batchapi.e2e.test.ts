import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';
import { deckTerms, koreanWords } from './support/word-lists.ts';

/**
 * `process --batch-api` as cron runs it: the built CLI against the mock provider's batch
 * endpoints (files + batches, lines answered as /chat/completions answers them). Each run
 * collects, submits and exits 75 until the deck is complete. Batches complete at the first look
 * (batchCompleteAfterMs 0), so nothing here waits on the clock.
 */

const API_KEY = 'sk-test-batch-0123456789abcdef';

const chatRequests = (server: MockServer): number =>
  server.requests.filter((r) => r.path.endsWith('/chat/completions')).length;

describe('process --batch-api', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer({ seed: 17, requireAuth: true });
  });
  after(async () => server.close());

  const env = (home: string, extra: Record<string, string> = {}) =>
    cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
      FLASHCARDS_PROVIDER: 'custom',
      FLASHCARDS_MODEL: 'gpt-4o-mini',
      FLASHCARDS_BATCH_API_AVAILABLE: 'true',
      ...extra,
    });

  test('run again and again: exit 75 until done, then 0; one batch per stage, failed lines resubmitted, no chat request', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 40);
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 0.05, batchShuffle: true });
    const seen = {
      batches: server.batch.batches.length,
      uploads: server.batch.uploads.length,
      lines: server.batch.linesSubmitted,
    };
    const args = ['process', path, '-o', join(home, 'deck.tsv'), '--batch-api'];
    const exits: number[] = [];
    for (let run = 0; run < 12; run++) {
      const r = await runCli(args, { env: env(home) });
      exits.push(r.code ?? -1);
      if (r.code !== 75) {
        assert.equal(r.code, 0, r.stderr);
        break;
      }
    }
    assert.equal(exits.at(-1), 0, `exits ${exits.join(',')}`);
    assert.ok(
      exits.slice(0, -1).every((c) => c === 75),
      `exits ${exits.join(',')}`,
    );
    assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    assert.equal(chatRequests(server), 0, 'no synchronous request');
    const batches = server.batch.batches.length - seen.batches;
    const lines = server.batch.linesSubmitted - seen.lines;
    assert.ok(batches >= 2, `${batches} batches`);
    // 80 jobs; failed lines (5%) go again, nothing else does.
    assert.ok(lines >= 80 && lines <= 96, `${lines} lines`);
    // Each line went once, or again only after it failed: no custom id is in two batches with the same attempt.
    const ids = server.batch.uploads.slice(seen.uploads).flatMap((u) => u.customIds);
    assert.equal(new Set(ids).size, ids.length);
    // The raw output files were kept before they were parsed.
    assert.ok(readdirSync(join(home, 'batch-api')).some((f) => f.endsWith('-output.jsonl')));

    const shown = await runCli(['batches', 'list', '--json'], { env: env(home) });
    const id = (JSON.parse(shown.stdout) as { batches: { id: string }[] }).batches[0]?.id ?? '';
    const detail = await runCli(['batches', 'show', id, '--json'], { env: env(home) });
    const remote = (JSON.parse(detail.stdout) as { remoteBatches: { state: string }[] }).remoteBatches;
    assert.equal(remote.length, batches);
    assert.ok(remote.every((b) => b.state === 'collected'));
    // A later synchronous run of the same words pays nothing: the answers are in the cache.
    const sync = await runCli(['process', path, '-o', join(home, 'again.tsv'), '--new'], { env: env(home) });
    assert.equal(sync.code, 0, sync.stderr);
    assert.equal(chatRequests(server), 0);
  });

  test('killed between upload and batch creation: the next run finds the batch by its tag, no duplicate', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 10);
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 0, batchShuffle: false, batchHoldCreate: true });
    const args = ['process', path, '-o', join(home, 'deck.tsv'), '--batch-api'];
    // The mock's batch log spans the file's tests: count from here.
    const seen = {
      batches: server.batch.batches.length,
      uploads: server.batch.uploads.length,
      lines: server.batch.linesSubmitted,
    };
    const killed = startCli(args, { env: env(home) });
    await server.until(() => server.batch.heldCreates >= 1);
    killed.child.kill('SIGKILL');
    await killed.done;
    // The server carries out the create it was holding; the client never saw the reply.
    server.set({ batchHoldCreate: false });
    await server.until(() => server.batch.batches.length >= seen.batches + 1);
    const exits: number[] = [];
    for (let run = 0; run < 6; run++) {
      const r = await runCli(args, { env: env(home) });
      exits.push(r.code ?? -1);
      if (r.code !== 75) break;
    }
    assert.equal(exits.at(-1), 0, `exits ${exits.join(',')}`);
    assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    const made = server.batch.batches.slice(seen.batches);
    const firstStage = made.filter((b) => b.metadata['flashcards_stage'] === 'analyze');
    assert.equal(firstStage.length, 1, 'one batch for the first stage');
    assert.equal(server.batch.uploads.length - seen.uploads, 2, 'one upload per stage');
    assert.equal(server.batch.linesSubmitted - seen.lines, 20);
  });

  test('--wait polls until the deck is complete, then exits 0', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 5);
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 0, batchHoldCreate: false });
    const r = await runCli(['process', path, '-o', join(home, 'deck.tsv'), '--batch-api', '--wait'], {
      env: env(home),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    assert.equal(chatRequests(server), 0);
  });

  /** Runs the command until it stops exiting 75 (at most `max` times); the exit codes in order. */
  async function untilDone(
    args: string[],
    home: string,
    max = 8,
  ): Promise<{ exits: number[]; stderr: string }> {
    const exits: number[] = [];
    let stderr = '';
    for (let run = 0; run < max; run++) {
      const r = await runCli(args, { env: env(home) });
      exits.push(r.code ?? -1);
      stderr = r.stderr;
      if (r.code !== 75) break;
    }
    return { exits, stderr };
  }

  test('an expired batch keeps what it answered; the rest goes again without counting an attempt', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 6);
    server.clear();
    server.set({
      batchCompleteAfterMs: 60_000,
      batchExpireAfterMs: 1,
      batchErrorRate: 0,
      batchShuffle: false,
    });
    try {
      // One attempt allowed: were the unanswered lines of an expired batch counted, items would fail.
      const args = ['process', path, '-o', join(home, 'deck.tsv'), '--batch-api', '--max-attempts', '1'];
      const first = await untilDone(args, home, 3);
      assert.deepEqual(first.exits, [75, 75, 75], first.stderr);
      server.set({ batchExpireAfterMs: 0, batchCompleteAfterMs: 0 });
      const { exits, stderr } = await untilDone(args, home);
      assert.equal(exits.at(-1), 0, `${exits.join(',')}: ${stderr}`);
      assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    } finally {
      server.set({ batchExpireAfterMs: 0, batchCompleteAfterMs: 0 });
    }
  });

  test('items failed at their last attempt fail the run (exit 1); --retry-failed gives them new attempts', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 4);
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 1, batchShuffle: false });
    const args = ['process', path, '-o', join(home, 'deck.tsv'), '--batch-api', '--max-attempts', '1'];
    const failed = await untilDone(args, home);
    assert.deepEqual(failed.exits, [75, 1], failed.stderr);
    server.set({ batchErrorRate: 0 });
    const again = await untilDone([...args, '--retry-failed'], home);
    assert.equal(again.exits.at(-1), 0, `${again.exits.join(',')}: ${again.stderr}`);
    assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
  });

  test('--fallback sync: jobs the batch API keeps failing go as ordinary requests, both stages', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 3);
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 1 });
    try {
      const args = [
        'process',
        path,
        '-o',
        join(home, 'deck.tsv'),
        '--batch-api',
        '--max-attempts',
        '1',
        '--fallback',
        'sync',
      ];
      const { exits, stderr } = await untilDone(args, home);
      assert.equal(exits.at(-1), 0, `${exits.join(',')}: ${stderr}`);
      assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
      assert.equal(chatRequests(server), 6, 'each of the 6 jobs once as an ordinary request');
    } finally {
      server.set({ batchErrorRate: 0 });
    }
  });

  test('a file the queue never has room for is split until it fits, then the batch completes', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 4);
    // How many tokens the first stage's file of 4 requests holds, from a run with no limit.
    const probe = tempDir();
    server.clear();
    server.set({ batchCompleteAfterMs: 0, batchErrorRate: 0, batchEnqueuedTokenLimit: 0 });
    const seen = server.batch.batches.length;
    await runCli(['process', path, '-o', join(probe, 'deck.tsv'), '--batch-api'], { env: env(probe) });
    const whole = server.batch.batches.slice(seen).find((b) => b.lines === 4);
    assert.ok(whole, 'the probe run submitted one file of 4 requests');
    server.set({ batchEnqueuedTokenLimit: Math.ceil(whole.promptTokens * 0.75) });
    try {
      const args = ['process', path, '-o', join(home, 'deck.tsv'), '--batch-api', '--no-cache'];
      const { exits, stderr } = await untilDone(args, home, 20);
      assert.equal(exits.at(-1), 0, `${exits.join(',')}: ${stderr}`);
      assert.ok(server.batch.enqueuedRefusals >= 2);
      assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    } finally {
      server.set({ batchEnqueuedTokenLimit: 0 });
    }
  });

  test('a provider without a batch API is refused before anything is sent (exit 2)', async () => {
    const home = tempDir();
    const { path } = koreanWords(home, 3);
    server.clear();
    const r = await runCli(['process', path, '--batch-api', '--provider', 'ollama'], { env: env(home) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--batch-api needs a provider with a batch API; ollama has none/);
    assert.equal(server.requests.length, 0);
    const dry = await runCli(['process', path, '--batch-api', '--dry-run', '--json'], { env: env(home) });
    assert.equal(dry.code, 0, dry.stderr);
    const estimate = JSON.parse(dry.stdout) as {
      estimatedCostUsd: number;
      batchApi: { estimatedCostUsd: number; discount: number };
    };
    assert.equal(estimate.batchApi.discount, 0.5);
    assert.ok(Math.abs(estimate.batchApi.estimatedCostUsd - estimate.estimatedCostUsd / 2) < 1e-6);
  });
});
