import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allFiles, cliEnv, fileContains, repoRoot, runCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

const API_KEY = 'sk-test-e2e-0123456789abcdef';
const fixture = join(repoRoot, 'fixtures', 'korean-20.csv');

function terms(csvPath: string): string[] {
  return readFileSync(csvPath, 'utf8')
    .trim()
    .split(/\r?\n/)
    .slice(1)
    .map((line) => line.split(',')[1] ?? '');
}

function deckRows(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
}

describe('flashcards process against an OpenAI-compatible server', () => {
  let server: MockServer;
  before(async () => {
    server = await startMockServer({ seed: 7, requireAuth: true });
  });
  after(async () => {
    await server.close();
  });

  test('repeated terms: the summary, batches show and the cost count the tokens the provider served, once', async () => {
    const home = tempDir();
    const input = join(home, 'repeats.txt');
    // Each term four times: identical requests in flight share one call (single flight) and
    // later ones come from the cache; either way each paid request is counted once.
    writeFileSync(input, `${['사과', '배', '포도', '감'].flatMap((t) => [t, t, t, t]).join('\n')}\n`);
    server.clear();
    server.set({ latencyMs: 30 });
    try {
      const env = cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: API_KEY,
        FLASHCARDS_BASE_URL: server.url,
      });
      const r = await runCli(
        ['process', input, '-o', join(home, 'deck.tsv'), '--concurrency', '16', '--json'],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as { tokens: { total: number }; requests: number };
      assert.equal(summary.requests, server.requests.length);
      assert.equal(summary.tokens.total, server.stats.tokensServed);
      const shown = await runCli(
        ['batches', 'show', (JSON.parse(r.stdout) as { batchId: string }).batchId, '--json'],
        {
          env,
        },
      );
      const stages = (
        JSON.parse(shown.stdout) as {
          stages: { promptTokens: number; completionTokens: number; requests: number }[];
        }
      ).stages;
      assert.equal(
        stages.reduce((n, st) => n + st.promptTokens + st.completionTokens, 0),
        server.stats.tokensServed,
      );
      assert.equal(
        stages.reduce((n, st) => n + st.requests, 0),
        server.requests.length,
      );
    } finally {
      server.set({ latencyMs: 0 });
    }
  });

  test('writes a deck with every term, sends Bearer auth and json_schema, keeps the key out of the data dir', async () => {
    const home = tempDir();
    const out = join(home, 'deck.tsv');
    server.clear();
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
    });
    const r = await runCli(['process', fixture, '-o', out, '--model', 'test-model', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);

    const summary = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(r.stdout.trim().split('\n').length, 1, 'stdout holds one JSON object');
    assert.deepEqual(summary['items'], { total: 20, succeeded: 20, failed: 0, pending: 0, skipped: 0 });
    assert.equal(summary['requests'], 40);

    const deck = readFileSync(out, 'utf8');
    assert.match(deck, /^#separator:tab\n#html:true\n/);
    assert.match(deck, /#tags column:3/);
    for (const term of terms(fixture)) assert.ok(deck.includes(term), `deck contains ${term}`);

    assert.equal(server.requests.length, 40);
    for (const req of server.requests) {
      assert.equal(req.headers['authorization'], `Bearer ${API_KEY}`);
      const body = req.body as {
        response_format: { type: string; json_schema: { strict: boolean; name: string } };
      };
      assert.equal(body.response_format.type, 'json_schema');
      assert.equal(body.response_format.json_schema.strict, true);
    }
    for (const file of allFiles(home))
      assert.equal(fileContains(file, API_KEY), false, `${file} holds the key`);
    assert.equal(r.stderr.includes(API_KEY), false);

    const logs = readdirSync(join(home, 'logs'));
    assert.equal(logs.length, 1);
    const lines = readFileSync(join(home, 'logs', logs[0]!), 'utf8')
      .trim()
      .split('\n');
    const events = lines.map((l) => JSON.parse(l) as { event: string; ts: string; level: string });
    assert.ok(events.every((e) => typeof e.ts === 'string' && typeof e.level === 'string'));
    assert.equal(events.filter((e) => e.event === 'job_succeeded').length, 40);
    assert.equal(events.at(-1)?.event, 'run_finished');
  });

  test('running the same command again sends nothing and writes a byte-identical deck', async () => {
    const home = tempDir();
    const out = join(home, 'deck.tsv');
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
    });
    const first = await runCli(['process', fixture, '-o', out, '--quiet'], { env });
    assert.equal(first.code, 0, first.stderr);
    const deck1 = readFileSync(out);
    server.clear();
    const second = await runCli(['process', fixture, '-o', out, '--json'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.equal(server.requests.length, 0);
    assert.deepEqual(readFileSync(out), deck1);
    const summary = JSON.parse(second.stdout) as { items: { skipped: number } };
    assert.equal(summary.items.skipped, 20);

    // A fresh batch over the same words is answered by the cache alone.
    const third = await runCli(['process', fixture, '-o', out, '--new', '--json'], { env });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(server.requests.length, 0);
    assert.equal((JSON.parse(third.stdout) as { cacheHits: number }).cacheHits, 40);
    assert.deepEqual(readFileSync(out), deck1);
  });

  test('reads stdin and writes csv and jsonl in input order', async () => {
    const home = tempDir();
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: API_KEY,
      FLASHCARDS_BASE_URL: server.url,
    });
    const r = await runCli(['process', '-', '--format', 'jsonl', '-o', '-', '--quiet'], {
      env,
      input: '사과\n# comment\n\n학교\n물\n',
    });
    assert.equal(r.code, 0, r.stderr);
    const cards = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { term: string; item: number });
    assert.deepEqual([...new Set(cards.map((c) => c.term))], ['사과', '학교', '물']);
    const csv = join(home, 'x.csv');
    const r2 = await runCli(['process', fixture, '--format', 'csv', '-o', csv, '--quiet'], { env });
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(readFileSync(csv, 'utf8'), /^term,Front,Back,tags\r?\n/);
  });

  test('a base URL with a query string (Azure OpenAI) gets /chat/completions before the query', async () => {
    const home = tempDir();
    server.clear();
    const input = join(home, 'words.txt');
    writeFileSync(input, '사과\n');
    const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY });
    const r = await runCli(
      ['process', input, '--base-url', `${server.url}?api-version=2024-10-21`, '--stdout', '-q'],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^사과\t/m);
    assert.deepEqual(
      server.requests.map((q) => q.path),
      ['/v1/chat/completions?api-version=2024-10-21', '/v1/chat/completions?api-version=2024-10-21'],
    );
  });

  test('a rejected API key aborts with exit 3 and a clear message', async () => {
    const home = tempDir();
    server.set({ status401: true });
    try {
      const env = cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: 'sk-wrong',
        FLASHCARDS_BASE_URL: server.url,
      });
      const r = await runCli(['process', fixture, '-o', join(home, 'd.tsv'), '--no-progress'], { env });
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /error: .*(401|rejected|auth)/i);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    } finally {
      server.set({ status401: false });
    }
  });

  // Node's agents learnt proxyEnv in 24.5; on older Nodes the variables are ignored.
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const proxyAware = major > 24 || (major === 24 && minor >= 5);
  test('goes through the proxy named by HTTP_PROXY, and straight to hosts in NO_PROXY', {
    skip: !proxyAware,
  }, async () => {
    const seen: string[] = [];
    // A forward proxy as HTTP_PROXY users have: requests arrive with absolute URLs and are relayed.
    const proxy = createServer((req, res) => {
      seen.push(req.url ?? '');
      const upstream = httpRequest(req.url ?? '', { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((done) => proxy.listen(0, '127.0.0.1', done));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const home = tempDir();
      const base = { FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url };
      const input = join(home, 'words.txt');
      writeFileSync(input, '사과\n학교\n');
      const r = await runCli(['process', input, '-o', join(home, 'd.tsv'), '-q'], {
        env: cliEnv({ ...base, HTTP_PROXY: proxyUrl }),
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(seen.length, 4);
      assert.ok(
        seen.every((u) => u.startsWith(`${server.url}/chat/completions`)),
        seen.join(' '),
      );
      const direct = await runCli(
        ['process', input, '-o', join(home, 'e.tsv'), '--new', '--no-cache', '-q'],
        {
          env: cliEnv({ ...base, HTTP_PROXY: proxyUrl, NO_PROXY: '127.0.0.1' }),
        },
      );
      assert.equal(direct.code, 0, direct.stderr);
      assert.equal(seen.length, 4, 'NO_PROXY hosts are reached directly');
    } finally {
      proxy.closeAllConnections();
      await new Promise((done) => proxy.close(done));
    }
  });

  test('rides through 5xx, resets and truncated JSON and still finishes every item', async () => {
    const home = tempDir();
    const out = join(home, 'deck.tsv');
    server.clear();
    server.set({ error500: 0.15, reset: 0.05, truncated: 0.1 });
    try {
      const env = cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: API_KEY,
        FLASHCARDS_BASE_URL: server.url,
      });
      // Small backoff so the test stays fast; the policy itself is unit-tested on a fake clock.
      writeFileSync(
        join(home, '.flashcardrc'),
        JSON.stringify({ retry: { baseDelay: '20ms', maxDelay: '200ms' } }),
      );
      const r = await runCli(
        ['--config', join(home, '.flashcardrc'), 'process', fixture, '-o', out, '--json'],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      const summary = JSON.parse(r.stdout) as { items: { succeeded: number }; retries: number };
      assert.equal(summary.items.succeeded, 20);
      assert.ok(summary.retries > 0);
      assert.equal(deckRows(out).length >= 20, true);
    } finally {
      server.set({ error500: 0, reset: 0, truncated: 0 });
    }
  });
});

describe('flashcards process offline and on bad input', () => {
  test('--provider mock writes a placeholder deck without any network or key', async () => {
    const home = tempDir();
    const out = join(home, 'out.tsv');
    const r = await runCli(['process', fixture, '-o', out, '--provider', 'mock', '--quiet'], {
      env: cliEnv({ FLASHCARDS_HOME: home }),
    });
    assert.equal(r.code, 0, r.stderr);
    const rows = deckRows(out);
    assert.ok(rows.length >= 20);
    assert.match(rows[0] ?? '', /\[mock\]/);
  });

  const bad: [string, string[], RegExp][] = [
    ['a missing file', ['process', 'nope.csv'], /input file not found/],
    ['an empty file', ['process', join(repoRoot, 'fixtures', 'empty.csv')], /empty/],
    [
      'a header-only file',
      ['process', join(repoRoot, 'fixtures', 'header-only.csv')],
      /no data rows|no terms/,
    ],
    ['a malformed CSV', ['process', join(repoRoot, 'fixtures', 'malformed-quote.csv')], /line \d+/],
    ['an unknown format', ['process', fixture, '--format', 'xml'], /xml/],
  ];
  for (const [what, args, message] of bad) {
    test(`${what} exits 2 with a one-line error and no stack trace`, async () => {
      const home = tempDir();
      const r = await runCli([...args, '--provider', 'mock'], { env: cliEnv({ FLASHCARDS_HOME: home }) });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }

  test('a missing API key names the variables and exits 2', async () => {
    const home = tempDir();
    const r = await runCli(['process', fixture], { env: cliEnv({ FLASHCARDS_HOME: home }) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /FLASHCARDS_API_KEY/);
  });

  test('a corrupt state database is named, with a hint to move it aside', async () => {
    const home = tempDir();
    writeFileSync(join(home, 'state.db'), 'this is not sqlite at all, just text'.repeat(200));
    const r = await runCli(['process', fixture, '--provider', 'mock'], {
      env: cliEnv({ FLASHCARDS_HOME: home }),
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /state\.db is not a valid SQLite database/);
    assert.match(r.stderr, /hint: move it aside/);
  });

  test('--version and --help work and exit 0', async () => {
    const v = await runCli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const h = await runCli(['--help']);
    assert.equal(h.code, 0);
    for (const group of ['process', 'cache', 'breaker', 'limiter', 'batches', 'config', 'doctor']) {
      assert.match(h.stdout, new RegExp(`\\b${group}\\b`));
    }
  });
});

describe('output format from the file name', () => {
  test('-o cards.csv writes csv and -o cards.jsonl writes jsonl unless --format says otherwise', async () => {
    const home = tempDir();
    const env = cliEnv({ FLASHCARDS_HOME: home });
    const csv = join(home, 'cards.csv');
    assert.equal(
      (await runCli(['process', fixture, '-o', csv, '--provider', 'mock', '--quiet'], { env })).code,
      0,
    );
    assert.match(readFileSync(csv, 'utf8'), /^term,Front,Back,tags/);
    const jsonl = join(home, 'cards.jsonl');
    assert.equal(
      (await runCli(['process', fixture, '-o', jsonl, '--provider', 'mock', '--quiet'], { env })).code,
      0,
    );
    assert.doesNotThrow(() => JSON.parse(readFileSync(jsonl, 'utf8').split('\n')[0] ?? ''));
    const forced = join(home, 'forced.csv');
    const r = await runCli(
      ['process', fixture, '-o', forced, '--format', 'anki', '--provider', 'mock', '--quiet'],
      { env },
    );
    assert.equal(r.code, 0);
    assert.match(readFileSync(forced, 'utf8'), /^#separator:tab/);
  });
});
