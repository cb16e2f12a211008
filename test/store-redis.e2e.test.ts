import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';
import { eventually } from './support/wait.ts';
import { deckTerms, koreanWords } from './support/word-lists.ts';

/**
 * `flashcards process --store redis://...` as users run it: the built CLI, separate data
 * directories (hosts) sharing one real redis-server, the mock provider answering in a few hundred
 * milliseconds. Faults are injected at points the provider's side reports (so many answers sent),
 * never after a fixed time; the assertions are on outcomes: exit codes, decks, paid requests.
 */

const API_KEY = 'sk-test-store-0123456789abcdef';
const STAGES = 2; // the default pipeline: analysis, then cards

/** The run's JSON-lines log so far ('' before it exists). */
function runLog(home: string): string {
  const dir = join(home, 'logs');
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('');
}

function paid(server: MockServer): number {
  return server.stats.byStatus[200] ?? 0;
}

describe('process with --store redis:// (several hosts on one Redis)', { skip: redisSkip }, () => {
  let redis: RedisServer;
  let server: MockServer;
  const work = tempDir('fc-store-e2e-');

  before(async () => {
    redis = await startRedisServer();
    server = await startMockServer({ seed: 11, requireAuth: true, latencyMs: [50, 150] });
  });
  after(async () => {
    await server.close();
    await redis.stop();
  });

  const env = (home: string, store = `${redis.url}?prefix=${encodeURIComponent(home.slice(-12))}:`) =>
    cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
      FLASHCARDS_STORE: store,
    });

  test('nothing listening at the store URL: exit 3 in at most four lines, no request sent', async () => {
    const home = tempDir();
    const { path } = koreanWords(home, 3);
    server.clear();
    const r = await runCli(
      ['process', path, '-o', join(home, 'deck.tsv'), '--store', 'redis://:pw@127.0.0.1:1/0'],
      {
        env: env(home),
      },
    );
    assert.equal(r.code, 3, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.ok(lines.length >= 1 && lines.length <= 4, r.stderr);
    assert.match(r.stderr, /redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/);
    assert.doesNotMatch(r.stderr, /pw@|\n\s+at /);
    assert.equal(server.requests.length, 0);
  });

  test('two hosts share one batch: each request paid once, each deck whole, breaker status from a third home', async () => {
    const a = tempDir();
    const b = tempDir();
    const { path, terms } = koreanWords(work, 60);
    const store = `${redis.url}?prefix=two-hosts:`;
    server.clear();
    const args = (home: string) => [
      'process',
      path,
      '-o',
      join(home, 'deck.tsv'),
      '--concurrency',
      '8',
      '--rpm',
      '1200',
    ];
    const [ra, rb] = await Promise.all([
      runCli(args(a), { env: env(a, store) }),
      runCli(args(b), { env: env(b, store) }),
    ]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    assert.ok(paid(server) <= terms.length * STAGES + 4, `paid ${paid(server)}`);
    for (const home of [a, b]) {
      const deck = deckTerms(join(home, 'deck.tsv'));
      assert.deepEqual([...deck.terms].sort(), [...new Set(terms)].sort());
      assert.equal(deck.duplicateCards, 0);
    }
    const third = tempDir();
    const status = await runCli(['breaker', 'status', '--store', store, '--json'], { env: env(third) });
    assert.equal(status.code, 0, status.stderr);
    assert.ok(JSON.parse(status.stdout));
    const shown = await runCli(['batches', 'list', '--store', store, '--json'], { env: env(third) });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /"done":60|"status":"done"/);
  });

  test('Redis frozen (SIGSTOP) mid-run until the run notices: the run finishes, every term in the deck, few repeats', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 150);
    server.clear();
    const run = startCli(['process', path, '-o', join(home, 'deck.tsv'), '--concurrency', '16'], {
      env: env(home),
    });
    await server.until(() => paid(server) >= 40);
    redis.pause();
    // Frozen until the run has seen it stop answering (its commands time out after 2 s; the log
    // says so), however long that takes on a busy machine: an outage of a few seconds.
    await eventually(() => runLog(home).includes('"change":"away"'), 50);
    redis.resume();
    let r = await run.done;
    if (r.code === 3) {
      // Allowed: the run gave up on the store; the next one writes the outbox first and finishes.
      r = await runCli(['process', path, '-o', join(home, 'deck.tsv'), '--concurrency', '16'], {
        env: env(home),
      });
    }
    assert.equal(r.code, 0, r.stderr);
    const deck = deckTerms(join(home, 'deck.tsv'));
    assert.deepEqual([...deck.terms].sort(), [...new Set(terms)].sort());
    assert.equal(deck.duplicateCards, 0);
    assert.ok(
      paid(server) <= terms.length * STAGES + 16,
      `paid ${paid(server)} for ${terms.length * STAGES} jobs`,
    );
  });

  test('a host killed with -9: another host takes its items; repeats at most its requests in flight', async () => {
    const a = tempDir();
    const b = tempDir();
    const { path, terms } = koreanWords(work, 80);
    const store = `${redis.url}?prefix=killed:`;
    server.clear();
    const killed = startCli(['process', path, '-o', join(a, 'deck.tsv'), '--concurrency', '8'], {
      env: env(a, store),
    });
    await server.until(() => paid(server) >= 30);
    killed.child.kill('SIGKILL');
    await killed.done;
    const r = await runCli(['process', path, '-o', join(b, 'deck.tsv'), '--concurrency', '8'], {
      env: env(b, store),
    });
    assert.equal(r.code, 0, r.stderr);
    const deck = deckTerms(join(b, 'deck.tsv'));
    assert.deepEqual([...deck.terms].sort(), [...new Set(terms)].sort());
    assert.ok(paid(server) <= terms.length * STAGES + 8, `paid ${paid(server)}`);
  });

  test('Redis restarted empty mid-run: exit 5 naming the loss; the next run starts over and finishes', async () => {
    const home = tempDir();
    const { path, terms } = koreanWords(home, 60);
    server.clear();
    const run = startCli(['process', path, '-o', join(home, 'deck.tsv'), '--concurrency', '8'], {
      env: env(home),
    });
    await server.until(() => paid(server) >= 20);
    const port = redis.port;
    await redis.stop();
    redis = await startRedisServer([], { port });
    const r = await run.done;
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /lost its state/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const sentBefore = server.requests.length;
    const again = await runCli(['process', path, '-o', join(home, 'deck.tsv'), '--concurrency', '8'], {
      env: env(home),
    });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(server.requests.length > sentBefore);
    assert.deepEqual([...deckTerms(join(home, 'deck.tsv')).terms].sort(), [...new Set(terms)].sort());
    assert.ok(existsSync(join(home, 'stores.json')));
  });
});
