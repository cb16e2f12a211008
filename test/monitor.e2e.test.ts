import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectRedis } from '../src/store/redis/connection.ts';
import { type CliRun, cliEnv, repoRoot, runCli, startCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';
import { type RedisServer, redisSkip, startRedisServer } from './support/redis-server.ts';

/**
 * `flashcards monitor` on the built CLI while a `process` run works against the mock provider.
 * The provider holds its answers (`hold`) so the run is under way for as long as the test looks;
 * the test waits for requests to be held, never for a time.
 */

const API_KEY = 'sk-test-monitor-0123456789abcdef';

interface MonitorJson {
  version: number;
  store: { kind: string; where: string };
  batches: {
    id: string;
    status: string;
    total: number;
    done: number;
    inFlight: number;
    runs: { host: string; pid: number | null }[];
  }[];
  limiter: { key: string }[];
  breakers: { key: string; state: string }[];
}

function input(dir: string, n: number): string {
  const lines = readFileSync(join(repoRoot, 'fixtures', 'korean-200.csv'), 'utf8')
    .trim()
    .split(/\r?\n/);
  const path = join(dir, `words-${n}.csv`);
  writeFileSync(path, `${lines.slice(0, n + 1).join('\n')}\n`);
  return path;
}

/** Starts a run of `n` items and resolves once the provider holds some of its requests. */
async function runUnderWay(server: MockServer, args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  server.clear();
  server.set({ hold: true });
  const run = startCli(args, { env });
  await server.until(() => server.stats.held >= 2);
  return run;
}

async function monitorJson(env: NodeJS.ProcessEnv, extra: string[] = []): Promise<MonitorJson> {
  const r = await runCli(['monitor', '--once', '--json', ...extra], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout) as MonitorJson;
}

describe('flashcards monitor (built CLI, mock provider)', () => {
  let server: MockServer;

  before(async () => {
    server = await startMockServer({ seed: 3, requireAuth: true });
  });
  after(async () => {
    await server.close();
  });

  test('--once --json while a run is under way shows the batch running, its run by pid, and the breaker', async () => {
    const home = tempDir('fc-mon-e2e-');
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
    });
    const run = await runUnderWay(
      server,
      ['process', input(home, 6), '-o', join(home, 'deck.tsv'), '--concurrency', '2', '--rpm', '6000'],
      env,
    );
    try {
      const seen = await monitorJson(env);
      assert.equal(seen.version, 1);
      assert.deepEqual(seen.store, { kind: 'sqlite', where: join(home, 'state.db') });
      assert.equal(seen.batches.length, 1);
      const [batch] = seen.batches;
      assert.equal(batch?.status, 'running');
      assert.equal(batch?.total, 6);
      assert.equal(batch?.done, 0);
      assert.ok((batch?.inFlight ?? 0) >= 1, JSON.stringify(batch));
      assert.deepEqual(
        batch?.runs.map((r) => r.pid),
        [run.child.pid],
      );
      // The tables say the same for people (stdout is a pipe here: one snapshot, no redraw).
      const tables = await runCli(['monitor'], { env });
      assert.equal(tables.code, 0, tables.stderr);
      assert.match(
        tables.stdout,
        new RegExp(`│ ${batch?.id.slice(0, 12)} .*│ running +│ 0/0/6 .*:${run.child.pid} +│`),
      );
      assert.equal(
        tables.stdout.includes(String.fromCharCode(27)),
        false,
        'no colour or cursor moves in a pipe',
      );
    } finally {
      server.set({ hold: false });
    }
    const done = await run.done;
    assert.equal(done.code, 0, done.stderr);
    const after = await monitorJson(env);
    assert.deepEqual(after.batches, []);
    assert.deepEqual(
      after.breakers.map((b) => b.state),
      ['closed'],
    );
    assert.equal(after.limiter.length, 1);
  });

  test('nothing has run in the data directory: it says so, exits 0 and creates nothing', async () => {
    const home = join(tempDir('fc-mon-e2e-'), 'fresh');
    const r = await runCli(['monitor'], { env: cliEnv({ FLASHCARDS_HOME: home }) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^nothing to monitor yet: no state in /);
    assert.equal(existsSync(home), false);
  });

  describe('with --store redis://', { skip: redisSkip }, () => {
    let redis: RedisServer;
    before(async () => {
      redis = await startRedisServer();
    });
    after(async () => {
      await redis.stop();
    });

    test('another host (data directory) sees the run through the store, and looking adds no key', async () => {
      const host = tempDir('fc-mon-e2e-');
      const watcher = tempDir('fc-mon-e2e-');
      const store = `${redis.url}?prefix=mon:`;
      const env = (home: string) =>
        cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url });

      // An empty store: nothing to show, and the look leaves no key (no epoch) behind.
      const empty = await monitorJson(env(watcher), ['--store', store]);
      assert.deepEqual([empty.batches, empty.breakers, empty.limiter], [[], [], []]);
      const conn = await connectRedis({ url: redis.url, commandTimeoutMs: 10_000 });
      try {
        assert.deepEqual(await conn.keys('mon:*'), []);
      } finally {
        conn.disconnect();
      }

      const run = await runUnderWay(
        server,
        [
          'process',
          input(host, 6),
          '-o',
          join(host, 'deck.tsv'),
          '--concurrency',
          '2',
          '--rpm',
          '6000',
          '--store',
          store,
        ],
        env(host),
      );
      try {
        const seen = await monitorJson(env(watcher), ['--store', store]);
        assert.equal(seen.store.kind, 'redis');
        assert.equal(seen.batches.length, 1);
        assert.equal(seen.batches[0]?.status, 'running');
        assert.deepEqual(
          seen.batches[0]?.runs.map((r) => r.pid),
          [run.child.pid],
        );
      } finally {
        server.set({ hold: false });
      }
      const done = await run.done;
      assert.equal(done.code, 0, done.stderr);
      assert.deepEqual((await monitorJson(env(watcher), ['--store', store])).batches, []);
      // The watcher's data directory stays as it was: no state.db, no outbox.
      assert.equal(existsSync(join(watcher, 'state.db')), false);
    });
  });
});
