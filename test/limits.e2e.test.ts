/**
 * Issue 3, scaled down: the built CLI against the mock provider enforcing a request limit (token
 * bucket with 1 s of burst, x-ratelimit-* headers, 429 + Retry-After); here 1200 RPM and 100
 * requests keep each case near 5 s. Only what holds on any machine is asserted: every CLI exits 0,
 * every item has cards, every job is answered exactly once, the runs' request counts add up.
 * How close a run gets to the limit (duration against requests / rate, utilisation) and how many
 * 429s it draws depend on the machine's load: `npm run bench` prints them at full size (600 and
 * 300 RPM, 200 requests; bench/limits.ts) against their targets.
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
  /** Distinct request bodies answered 200: one per job when no job was answered twice. */
  answeredJobs: number;
  rateLimited: number;
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
  const runs = inputs.map((n, i) => {
    const input = words(home, `in${i}`, n);
    const out = join(home, `cards${i}.jsonl`);
    const args = ['process', input, '-o', out, '--format', 'jsonl', '--model', 'limits', '--json', ...extra];
    return startCli(args, { env }).done;
  });
  const results = await Promise.all(runs);
  const chat = server.requests.filter((r) => r.path.endsWith('/chat/completions'));
  const summaries = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Summary;
  });
  const answered = chat.filter((r) => r.status === 200);
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
    succeeded: answered.length,
    answeredJobs: new Set(answered.map((r) => JSON.stringify(r.body))).size,
    rateLimited: chat.filter((r) => r.status === 429).length,
  };
}

/** Counts only: the timing figures are the bench's (see the top of this file). */
function describeRun(m: Measured): string {
  return `${m.chat.length} requests, ${m.rateLimited} answered 429`;
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

  test('told the limit, a run finishes every item, each job answered once', async (t) => {
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
    assert.equal(m.answeredJobs, ITEMS * STAGES);
    assert.equal(m.summaries[0]?.requests, m.chat.length);
  });

  test('not told the limit, a run learns it and finishes every item, each job answered once', async (t) => {
    const m = await run(await provider(), [ITEMS], []);
    t.diagnostic(describeRun(m));
    assert.equal(m.summaries[0]?.items.succeeded, ITEMS);
    assert.equal(m.succeeded, ITEMS * STAGES);
    assert.equal(m.answeredJobs, ITEMS * STAGES);
    assert.equal(m.summaries[0]?.requests, m.chat.length);
  });

  test('two processes on one data directory and key share the limit: both finish, each job answered once, their requests add up', async (t) => {
    const m = await run(await provider(), [ITEMS / 2, ITEMS / 2], ['--rpm', String(RPM)]);
    t.diagnostic(describeRun(m));
    for (const s of m.summaries) assert.equal(s.items.succeeded, ITEMS / 2);
    assert.equal(m.succeeded, ITEMS * STAGES);
    assert.equal(m.answeredJobs, ITEMS * STAGES);
    assert.equal(
      m.summaries.reduce((n, s) => n + s.requests, 0),
      m.chat.length,
    );
  });
});
