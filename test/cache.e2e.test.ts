import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, repoRoot, runCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

describe('the response cache through the CLI', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer({ seed: 11 });
  });
  after(async () => {
    await server.close();
  });

  test('a 200-item batch run twice: the second run sends nothing and writes a byte-identical deck', async () => {
    const home = tempDir();
    const out = join(home, 'deck.tsv');
    const input = join(repoRoot, 'fixtures', 'korean-200.csv');
    const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: 'k', FLASHCARDS_BASE_URL: server.url });
    const first = await runCli(['process', input, '-o', out, '--quiet', '--concurrency', '16'], { env });
    assert.equal(first.code, 0, first.stderr);
    const deck = readFileSync(out);
    server.clear();
    // --new: a fresh batch, so every answer must come from the cache, not from stored results.
    const second = await runCli(['process', input, '-o', out, '--new', '--json'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(server.requests.length, 0);
    assert.deepEqual(readFileSync(out), deck);
    assert.equal((JSON.parse(second.stdout) as { cacheHits: number }).cacheHits, 400);

    const stats = await runCli(['cache', 'stats', '--json'], { env });
    assert.equal(stats.code, 0, stats.stderr);
    const s = JSON.parse(stats.stdout) as { entries: number; compressionRatio: number; hits: number };
    assert.ok(s.entries >= 400, `entries ${s.entries}`);
    assert.ok(s.compressionRatio > 1, `compressionRatio ${s.compressionRatio}`);
    assert.ok(s.hits >= 400);
  });

  test('--refresh asks again and --no-cache neither reads nor writes', async () => {
    const home = tempDir();
    const out = join(home, 'deck.tsv');
    const input = join(repoRoot, 'fixtures', 'korean-20.csv');
    const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: 'k', FLASHCARDS_BASE_URL: server.url });
    assert.equal((await runCli(['process', input, '-o', out, '--quiet'], { env })).code, 0);
    server.clear();
    assert.equal(
      (await runCli(['process', input, '-o', out, '--quiet', '--new', '--refresh'], { env })).code,
      0,
    );
    assert.equal(server.requests.length, 40);
    server.clear();
    const home2 = tempDir();
    const env2 = { ...env, FLASHCARDS_HOME: home2 };
    assert.equal(
      (await runCli(['process', input, '-o', out, '--quiet', '--no-cache'], { env: env2 })).code,
      0,
    );
    const stats = JSON.parse((await runCli(['cache', 'stats', '--json'], { env: env2 })).stdout) as {
      entries: number;
    };
    assert.equal(stats.entries, 0);
  });
});
