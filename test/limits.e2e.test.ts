/**
 * Issue 3, scaled down: the built CLI against the mock provider enforcing a request limit (token
 * bucket with 1 s of burst, x-ratelimit-* headers, 429 + Retry-After). The full-size scenarios
 * (600 and 300 RPM, 200 requests) are in bench/limits.ts; here 1200 RPM and 100 requests keep each
 * case near 5 s. Durations run from the first request the provider saw to the last CLI exit, so
 * process start-up on a loaded machine does not count against the limiter.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type CliResult, cliEnv, startCli, tempDir } from './support/cli.ts';
import { type MockServer, type RecordedRequest, startMockServer } from './support/mock-server.ts';

const API_KEY = 'sk-test-limits-0123456789';
const RPM = 1200;
const ITEMS = 50;
const STAGES = 2;

interface Summary {
  items: { total: number; succeeded: number; failed: number; pending: number };
  requests: number;
}

interface Measured {
  results: CliResult[];
  summaries: Summary[];
  chat: RecordedRequest[];
  succeeded: number;
  rateLimited: number;
  /** First request at the provider to the last CLI exit. */
  durationMs: number;
  /** Successful requests / RPM: the shortest time the provider's limit allows. */
  idealMs: number;
}

function words(dir: string, name: string, n: number): string {
  const file = join(dir, name);
  writeFileSync(file, `${Array.from({ length: n }, (_, i) => `${name}-${i}`).join('\n')}\n`);
  return file;
}

/** Runs one CLI per input at once on one data directory and key, and measures what the provider saw. */
async function run(server: MockServer, inputs: number[], extra: string[]): Promise<Measured> {
  server.clear();
  const home = tempDir();
  const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url });
  let lastExit = 0;
  const runs = inputs.map((n, i) => {
    const input = words(home, `in${i}`, n);
    const out = join(home, `cards${i}.jsonl`);
    const args = ['process', input, '-o', out, '--format', 'jsonl', '--model', 'limits', '--json', ...extra];
    return startCli(args, { env }).done.then((r) => {
      lastExit = Math.max(lastExit, Date.now());
      return r;
    });
  });
  const results = await Promise.all(runs);
  const chat = server.requests.filter((r) => r.path.endsWith('/chat/completions'));
  const summaries = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Summary;
  });
  const succeeded = chat.filter((r) => r.status === 200).length;
  const first = Math.min(...chat.map((r) => r.at));
  for (const [i, n] of inputs.entries()) {
    const cards = readFileSync(join(home, `cards${i}.jsonl`), 'utf8')
      .trim()
      .split('\n');
    const terms = new Set(cards.map((line) => (JSON.parse(line) as { term: string }).term));
    assert.equal(terms.size, n, `every item of input ${i} has cards`);
  }
  return {
    results,
    summaries,
    chat,
    succeeded,
    rateLimited: chat.filter((r) => r.status === 429).length,
    durationMs: lastExit - first,
    idealMs: (succeeded / RPM) * 60_000,
  };
}

function describeRun(m: Measured): string {
  return `${m.chat.length} requests, ${m.rateLimited} answered 429, ${m.durationMs} ms against an ideal of ${m.idealMs} ms`;
}

describe('rate limits, measured with the CLI against a provider that enforces them', {
  concurrency: true,
}, () => {
  // One provider per case: the cases run side by side and must not share a bucket.
  const servers: MockServer[] = [];
  const provider = async (): Promise<MockServer> => {
    const s = await startMockServer({ seed: 3, latencyMs: [50, 150], rpm: RPM, burstSeconds: 1 });
    servers.push(s);
    return s;
  };
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  test('told the limit, a run takes at most 1/0.9 of requests/rate with at most 1% answered 429', async (t) => {
    const m = await run(await provider(), [ITEMS], ['--rpm', String(RPM)]);
    t.diagnostic(describeRun(m));
    assert.deepEqual(m.summaries[0]?.items, {
      total: ITEMS,
      succeeded: ITEMS,
      failed: 0,
      pending: 0,
      skipped: 0,
    });
    assert.equal(m.succeeded, ITEMS * STAGES);
    assert.ok(m.rateLimited <= 0.01 * m.chat.length, describeRun(m));
    assert.ok(m.durationMs <= m.idealMs / 0.9, describeRun(m));
  });

  test('not told the limit, a run learns it: every item, at least 75% utilisation, at most 10% 429s', async (t) => {
    const m = await run(await provider(), [ITEMS], []);
    t.diagnostic(describeRun(m));
    assert.equal(m.summaries[0]?.items.succeeded, ITEMS);
    assert.equal(m.succeeded, ITEMS * STAGES);
    assert.ok(m.rateLimited <= 0.1 * m.chat.length, describeRun(m));
    assert.ok(m.idealMs / m.durationMs >= 0.75, describeRun(m));
  });

  test('two processes on one data directory and key share the limit: at most 2% 429s, at least 85% utilisation', async (t) => {
    const m = await run(await provider(), [ITEMS / 2, ITEMS / 2], ['--rpm', String(RPM)]);
    t.diagnostic(describeRun(m));
    for (const s of m.summaries) assert.equal(s.items.succeeded, ITEMS / 2);
    assert.equal(m.succeeded, ITEMS * STAGES);
    assert.equal(
      m.summaries.reduce((n, s) => n + s.requests, 0),
      m.chat.length,
    );
    assert.ok(m.rateLimited <= 0.02 * m.chat.length, describeRun(m));
    assert.ok(m.idealMs / m.durationMs >= 0.85, describeRun(m));
  });
});
