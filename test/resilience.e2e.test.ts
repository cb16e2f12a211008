/**
 * Issue 5, scaled down: the built CLI against a flaky mock provider and through an outage. Backoff,
 * breaker window and break are shortened through a .flashcardrc (the policies themselves are
 * unit-tested on fake clocks); the full-size scenarios with realistic settings, and the figures
 * that depend on timing (requests sent during an outage, requests per success), are printed by
 * `npm run bench` (bench/limits.ts). Here only what holds on any machine is asserted.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CliResult, cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import {
  type MockOptions,
  type MockServer,
  type RecordedRequest,
  startMockServer,
} from './support/mock-server.ts';

const API_KEY = 'sk-test-resilience-0123456789';

interface Summary {
  items: { total: number; succeeded: number; failed: number; pending: number };
  requests: number;
  retries: number;
}

interface Setup {
  home: string;
  env: NodeJS.ProcessEnv;
  args: string[];
}

/** A data directory, an input of `items` terms, a config file and the `process` command line. */
function setup(server: MockServer, items: number, config: object, extra: string[]): Setup {
  const home = tempDir();
  const input = join(home, 'words.txt');
  writeFileSync(input, `${Array.from({ length: items }, (_, i) => `term-${i}`).join('\n')}\n`);
  const rc = join(home, '.flashcardrc');
  writeFileSync(rc, JSON.stringify(config));
  const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url });
  const out = join(home, 'cards.jsonl');
  return {
    home,
    env,
    args: [
      '--config',
      rc,
      'process',
      input,
      '-o',
      out,
      '--format',
      'jsonl',
      '--model',
      'resilience',
      '--json',
      ...extra,
    ],
  };
}

function chat(server: MockServer): RecordedRequest[] {
  return server.requests.filter((r) => r.path.endsWith('/chat/completions'));
}

function summaryOf(r: CliResult): Summary {
  return JSON.parse(r.stdout) as Summary;
}

function termsWithCards(home: string): number {
  const lines = readFileSync(join(home, 'cards.jsonl'), 'utf8').trim().split('\n');
  return new Set(lines.map((l) => (JSON.parse(l) as { term: string }).term)).size;
}

describe('resilience, measured with the CLI against a failing provider', { concurrency: true }, () => {
  const servers: MockServer[] = [];
  const provider = async (opts: MockOptions): Promise<MockServer> => {
    const s = await startMockServer(opts);
    servers.push(s);
    return s;
  };
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  test('a flaky provider (500s, resets, truncated JSON, hangs) still gets every item, in at most 2 requests per success', async (t) => {
    const items = 80;
    const server = await provider({
      seed: 1,
      latencyMs: [50, 150],
      error500: 0.1,
      reset: 0.03,
      truncated: 0.05,
      hang: 0.01,
    });
    // Hangs end on the request timeout; 5 s is far beyond the 50-150 ms answers even on a loaded
    // machine, so no answered request times out (and counts as a success the run did not get).
    const s = setup(server, items, { retry: { baseDelay: '50ms', maxDelay: '500ms' } }, ['--timeout', '5s']);
    const r = await runCli(s.args, { env: s.env });
    const requests = chat(server);
    const successes = requests.filter((q) => q.status === 200 && q.fault === undefined).length;
    const faults: Record<string, number> = {};
    for (const q of requests) faults[q.fault ?? 'none'] = (faults[q.fault ?? 'none'] ?? 0) + 1;
    t.diagnostic(
      `exit ${r.code}; ${requests.length} requests for ${successes} successes; ${JSON.stringify(faults)}`,
    );
    assert.equal(r.code, 0, r.stderr);
    const summary = summaryOf(r);
    assert.deepEqual(summary.items, { total: items, succeeded: items, failed: 0, pending: 0, skipped: 0 });
    assert.equal(successes, items * 2);
    assert.equal(summary.requests, requests.length);
    assert.ok(requests.length <= 2 * successes, `${requests.length} requests for ${successes} successes`);
    assert.equal(termsWithCards(s.home), items);
  });

  test('an outage longer than the attempts of the last items fails nothing: they retry through it (the retry window)', async () => {
    const items = 3;
    const server = await provider({ seed: 4, outage: true });
    // Quick backoff, and a breaker that never opens: only the retry window keeps the items going.
    const s = setup(
      server,
      items,
      { retry: { baseDelay: '10ms', maxDelay: '50ms' }, breaker: { minThroughput: 100_000 } },
      ['--concurrency', '3'],
    );
    const run = startCli(s.args, { env: s.env });
    try {
      // Every item has failed more often than its 6 attempts before the provider comes back.
      await server.until(() => chat(server).length >= items * 10);
    } finally {
      server.set({ outage: false });
    }
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(summaryOf(r).items, {
      total: items,
      succeeded: items,
      failed: 0,
      pending: 0,
      skipped: 0,
    });
  });

  test('items that failed on the provider side: the summary says to run again with --retry-failed', async () => {
    const server = await provider({ seed: 4, outage: true });
    const s = setup(
      server,
      2,
      { retry: { baseDelay: '10ms', maxDelay: '20ms', window: '0' }, breaker: { minThroughput: 100_000 } },
      ['--concurrency', '2'],
    );
    const r = await runCli(
      s.args.filter((a) => a !== '--json'),
      { env: s.env },
    );
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^hint: they failed on the provider's side \(server\): run the same command again with --retry-failed/m,
    );
  });

  test('a provider whose every answer fails validation stops the run in seconds, exit 3, naming the cause', async () => {
    const server = await provider({ seed: 3, truncated: 1 });
    const s = setup(server, 200, { retry: { baseDelay: '20ms', maxDelay: '200ms' } }, []);
    const r = await runCli(s.args, { env: s.env });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^error: the provider's answers are unusable: .*not valid JSON/m);
    assert.match(r.stderr, /^hint: check --model and --base-url/m);
    // Given up on the retry budget (20), not after every item's six attempts (2,400 requests).
    assert.ok(chat(server).length <= 40, `${chat(server).length} requests before giving up`);
  });

  test('an outage opens the breaker, which another process sees open; the batch completes after recovery', async (t) => {
    const items = 40;
    const server = await provider({ seed: 9, latencyMs: [50, 150] });
    const s = setup(
      server,
      items,
      {
        breaker: { samplingWindow: '3s', breakDuration: '1s', minThroughput: 5 },
        retry: { baseDelay: '100ms', maxDelay: '1s' },
      },
      ['--rpm', '1200'],
    );
    const run = startCli(s.args, { env: s.env });
    let exited = false;
    void run.done.then(() => {
      exited = true;
    });
    // The outage starts once the run is well under way, and lasts until another process has seen
    // the breaker open (how soon it opens is the breaker's business, and a figure of the bench).
    await server.until(() => chat(server).length >= 20);
    server.set({ outage: true });
    const seen: string[] = [];
    while (!seen.includes('open') && !exited) {
      const st = await runCli(['breaker', 'status', '--json'], { env: s.env });
      assert.equal(st.code, 0, st.stderr);
      seen.push((JSON.parse(st.stdout) as { state: string }).state);
      // Paces the polls only; nothing is decided on how long anything took.
      if (!seen.includes('open')) await sleep(50);
    }
    server.set({ outage: false });
    let result = await run.done;
    // Every chat request answered 503 came during the outage (no other 503s are configured).
    const during = chat(server).filter((q) => q.status === 503).length;
    t.diagnostic(
      `exit ${result.code}; ${during} requests during the outage; breaker seen: ${seen.join(',')}`,
    );

    if (result.code === 3) {
      // Stopped while the breaker was open: running the same command again finishes the batch.
      result = await runCli(s.args, { env: s.env });
    }
    assert.equal(result.code, 0, result.stderr);
    assert.equal(summaryOf(result).items.failed, 0);
    assert.equal(termsWithCards(s.home), items);
    assert.ok(seen.includes('open'), `breaker status during the outage: ${seen.join(', ')}`);

    const history = await runCli(['breaker', 'history', '--json'], { env: s.env });
    const transitions = (JSON.parse(history.stdout) as { transitions: { from: string; to: string }[] })
      .transitions;
    assert.ok(transitions.some((x) => x.from === 'closed' && x.to === 'open'));
    assert.equal(transitions[0]?.to, 'closed', 'the last transition closed the breaker again');
  });
});
