import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { describeKeys } from '../src/config/schema.ts';
import { type CliResult, cliEnv, repoRoot, runCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';

/**
 * A new user's first ten minutes, from outside: write a config, estimate a run without any
 * network, check the set-up, run, and see the cache answer the second time.
 */

const API_KEY = 'sk-first-run-0123456789abcdef';
const fixture = join(repoRoot, 'fixtures', 'korean-20.csv');
/** gpt-4o-mini, USD per 1M tokens (DEFAULT_PRICES). */
const PRICE = { input: 0.15, output: 0.6 };

interface Project {
  cwd: string;
  home: string;
  /** No API key, no base URL: what a new shell has. */
  env: NodeJS.ProcessEnv;
  init: CliResult;
}

/** A fresh directory where `config init --yes --provider openai --model gpt-4o-mini --rpm 60` ran. */
async function freshProject(): Promise<Project> {
  const root = tempDir('fc-first-');
  const cwd = join(root, 'words');
  const home = join(root, 'data');
  mkdirSync(cwd);
  const env = cliEnv({ HOME: root, FLASHCARDS_HOME: home });
  const init = await runCli(
    ['config', 'init', '--yes', '--provider', 'openai', '--model', 'gpt-4o-mini', '--rpm', '60'],
    { cwd, env },
  );
  return { cwd, home, env, init };
}

interface DryRun {
  input: string;
  format: string;
  items: number;
  jobs: number;
  cacheHits: number;
  calls: number;
  estimatedTokens: { prompt: number; completion: number; total: number };
  estimatedCostUsd: number | null;
  estimatedDurationMs: number;
  model: string;
  baseUrl: string;
  limits: { rpm: number | null; tpm: number | null; concurrency: number };
}

describe('first run in a fresh directory', { concurrency: 2 }, () => {
  let server: MockServer;
  before(async () => {
    // Lists the models a provider would, so doctor can check the configured one.
    server = await startMockServer({
      seed: 3,
      requireAuth: true,
      models: ['gpt-4o', 'gpt-4o-mini', 'o3-mini'],
    });
  });
  after(async () => {
    await server.close();
  });

  test('config init --yes writes .flashcardrc with the chosen provider, model and limit, and no key', async () => {
    const p = await freshProject();
    assert.equal(p.init.code, 0, p.init.stderr);
    assert.equal(p.init.stdout, '');
    const written = JSON.parse(readFileSync(join(p.cwd, '.flashcardrc'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(written, {
      provider: 'openai',
      model: 'gpt-4o-mini',
      sourceLanguage: 'Korean',
      targetLanguage: 'English',
      deck: 'Korean Vocabulary',
      limiter: { rpm: 60 },
    });
    assert.match(p.init.stderr, /^wrote \.flashcardrc \(provider openai, model gpt-4o-mini\)$/m);
    assert.match(p.init.stderr, /^next: export OPENAI_API_KEY=\.\.\./m);
  });

  test('process --dry-run then estimates items, calls, tokens, cost and time without a key or network', async () => {
    const p = await freshProject();
    const r = await runCli(['process', fixture, '--dry-run'], { cwd: p.cwd, env: p.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'dry run: nothing was sent\n');
    assert.match(r.stdout, /│ input\s+│ .*korean-20\.csv \(csv\), 20 items\s+│/);
    assert.match(r.stdout, /│ jobs\s+│ 40 \(0 answered by the cache\)\s+│/);
    assert.match(r.stdout, /│ calls needed\s+│ 40\s+│/);
    assert.match(r.stdout, /│ tokens\s+│ ~\d+ \(\d+ in, \d+ out\)\s+│/);
    assert.match(r.stdout, /│ cost\s+│ ~\$\d+\.\d{4}\s+│/);
    // --rpm 60 from the config is the binding limit: 40 calls take 40 s.
    assert.match(r.stdout, /│ time\s+│ ~40(\.0)?s at ~60 requests\/min\s+│/);
    assert.match(r.stdout, /│ model\s+│ gpt-4o-mini at https:\/\/api\.openai\.com\/v1\s+│/);
    // A dry run leaves no trace in the data directory.
    assert.equal(existsSync(join(p.home, 'state.db')), false);
    assert.equal(existsSync(join(p.home, 'cache.db')), false);
  });

  test('process --dry-run --json prints one object with the counts and estimates, and sends nothing', async () => {
    const p = await freshProject();
    server.clear();
    const env = { ...p.env, FLASHCARDS_BASE_URL: server.url };
    const r = await runCli(['process', fixture, '--dry-run', '--json'], { cwd: p.cwd, env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    const d = JSON.parse(r.stdout) as DryRun;
    assert.equal(d.format, 'csv');
    assert.equal(d.items, 20);
    assert.equal(d.jobs, 40);
    assert.equal(d.cacheHits, 0);
    assert.equal(d.calls, 40);
    assert.ok(d.estimatedTokens.prompt > 0 && d.estimatedTokens.completion > 0);
    assert.equal(d.estimatedTokens.total, d.estimatedTokens.prompt + d.estimatedTokens.completion);
    const cost = (d.estimatedTokens.prompt * PRICE.input + d.estimatedTokens.completion * PRICE.output) / 1e6;
    // Costs are rounded to micro-dollars (costOf): equal to within half of one.
    assert.ok(d.estimatedCostUsd !== null && Math.abs(d.estimatedCostUsd - cost) <= 0.5e-6 + 1e-12);
    assert.equal(d.estimatedDurationMs, 40_000);
    assert.equal(d.model, 'gpt-4o-mini');
    assert.equal(d.baseUrl, server.url);
    assert.deepEqual(d.limits, { rpm: 60, tpm: null, concurrency: 'steered', maxConcurrency: 256 });
    assert.equal(server.requests.length, 0);
  });

  test('config show names the source of every value: flag, env, file, preset or default', async () => {
    const p = await freshProject();
    const env = { ...p.env, FLASHCARDS_CONCURRENCY: '4' };
    const json = await runCli(['config', 'show', '--json', '--model', 'gpt-4o'], { cwd: p.cwd, env });
    assert.equal(json.code, 0, json.stderr);
    const shown = JSON.parse(json.stdout) as {
      configFile: string;
      sources: Record<string, { kind: string; detail: string }>;
    };
    const rc = join(p.cwd, '.flashcardrc');
    assert.equal(shown.configFile, rc);
    for (const { path } of describeKeys()) assert.ok(shown.sources[path], `source of ${path}`);
    assert.deepEqual(shown.sources['model'], { kind: 'flag', detail: '--model' });
    assert.deepEqual(shown.sources['concurrency'], { kind: 'env', detail: 'FLASHCARDS_CONCURRENCY' });
    assert.deepEqual(shown.sources['provider'], { kind: 'file', detail: rc });
    assert.deepEqual(shown.sources['limiter.rpm'], { kind: 'file', detail: rc });
    assert.deepEqual(shown.sources['baseUrl'], { kind: 'preset', detail: 'openai' });
    assert.deepEqual(shown.sources['timeout'], { kind: 'default', detail: 'default' });
    assert.deepEqual(shown.sources['apiKey'], { kind: 'default', detail: 'not set' });

    const table = await runCli(['config', 'show', '--model', 'gpt-4o'], { cwd: p.cwd, env });
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stderr, '');
    for (const { path } of describeKeys()) {
      const row = table.stdout.split('\n').find((l) => l.startsWith(`│ ${path} `));
      assert.ok(row, `a row for ${path}`);
      const source = row.split('│').at(-2)?.trim();
      assert.ok(source, `${path} has a source`);
    }
    assert.match(table.stdout, /│ model\s+│ gpt-4o\s+│ --model\s+│/);
    assert.match(table.stdout, /│ concurrency\s+│ 4\s+│ env FLASHCARDS_CONCURRENCY\s+│/);
    assert.match(table.stdout, /│ baseUrl\s+│ https:\/\/api\.openai\.com\/v1\s+│ preset openai\s+│/);
    assert.match(table.stdout, /│ timeout\s+│ 1m\s+│ default\s+│/);
  });

  test('doctor passes against the mock server with a key set, probing it with the key', async () => {
    const p = await freshProject();
    server.clear();
    const env = { ...p.env, FLASHCARDS_BASE_URL: server.url, OPENAI_API_KEY: API_KEY };
    const r = await runCli(['doctor'], { cwd: p.cwd, env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^all 7 checks passed$/m);
    assert.match(r.stdout, /│ API key\s+│ pass\s+│ set \(from env OPENAI_API_KEY\)/);
    assert.match(r.stdout, /│ provider\s+│ pass\s+│ GET http:\/\/127\.0\.0\.1:\d+\/v1\/models: HTTP 200/);
    assert.equal(r.stdout.includes(API_KEY), false, 'the key is never printed');
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]?.path, '/v1/models');
    assert.equal(server.requests[0]?.headers['authorization'], `Bearer ${API_KEY}`);

    const json = await runCli(['doctor', '--json'], { cwd: p.cwd, env });
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.checks.map((c) => `${c.name}:${c.status}`),
      [
        'Node.js:pass',
        'data directory:pass',
        'state.db:pass',
        'cache.db:pass',
        'config:pass',
        'API key:pass',
        'provider:pass',
      ],
    );
  });

  test('doctor without a key fails with exit 1, naming the variables and how to set one', async () => {
    const p = await freshProject();
    const r = await runCli(['doctor'], { cwd: p.cwd, env: p.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stdout,
      /│ API key\s+│ fail\s+│ no API key for provider openai; looked in FLASHCARDS_API_KEY, OPENAI_API_KEY/,
    );
    assert.match(r.stdout, /export OPENAI_API_KEY=<your key>/);
    assert.match(r.stdout, /│ provider\s+│ skip\s+│ skipped: needs an API key first/);
    assert.match(r.stdout, /^2 of 7 checks did not pass$/m);

    const json = await runCli(['doctor', '--json'], { cwd: p.cwd, env: p.env });
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as {
      ok: boolean;
      checks: { name: string; status: string; fix?: string }[];
    };
    assert.equal(report.ok, false);
    const key = report.checks.find((c) => c.name === 'API key');
    assert.equal(key?.status, 'fail');
    assert.match(
      key?.fix ?? '',
      /^export OPENAI_API_KEY=<your key> \(get one at https:\/\/platform\.openai\.com\/api-keys\)$/,
    );
  });

  test('after a real run, process --dry-run finds every job in the cache and needs no calls', async () => {
    const p = await freshProject();
    const env = { ...p.env, FLASHCARDS_BASE_URL: server.url, OPENAI_API_KEY: API_KEY };
    server.clear();
    // The flag lifts the config's 60 rpm so the run takes milliseconds; limits do not change cache keys.
    const run = await runCli(
      ['process', fixture, '-o', join(p.cwd, 'deck.tsv'), '--json', '--rpm', '60000'],
      {
        cwd: p.cwd,
        env,
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { requests: number; items: { succeeded: number } };
    assert.equal(summary.items.succeeded, 20);
    assert.equal(summary.requests, 40);
    server.clear();

    const json = await runCli(['process', fixture, '--dry-run', '--json'], { cwd: p.cwd, env });
    assert.equal(json.code, 0, json.stderr);
    const d = JSON.parse(json.stdout) as DryRun;
    assert.equal(d.jobs, 40);
    assert.equal(d.cacheHits, 40);
    assert.equal(d.calls, 0);
    assert.deepEqual(d.estimatedTokens, { prompt: 0, completion: 0, total: 0 });
    assert.equal(d.estimatedCostUsd, 0);
    assert.equal(d.estimatedDurationMs, 0);

    const human = await runCli(['process', fixture, '--dry-run'], { cwd: p.cwd, env });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /│ jobs\s+│ 40 \(40 answered by the cache\)\s+│/);
    assert.match(human.stdout, /│ calls needed\s+│ 0\s+│/);
    assert.equal(server.requests.length, 0, 'a dry run sends nothing');
  });

  test('after a run, the inspecting commands print their results on stdout, one line per row, so pipes work', async (t) => {
    // A provider of its own: the other tests count the requests theirs receives.
    const own = await startMockServer({ seed: 4 });
    t.after(() => own.close());
    const p = await freshProject();
    const env = { ...p.env, FLASHCARDS_BASE_URL: own.url, OPENAI_API_KEY: API_KEY };
    const run = await runCli(
      ['process', fixture, '-o', join(p.cwd, 'deck.tsv'), '--json', '--rpm', '60000'],
      {
        cwd: p.cwd,
        env,
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const { batchId } = JSON.parse(run.stdout) as { batchId: string };

    for (const args of [
      ['batches', 'list'],
      ['batches', 'show', batchId.slice(0, 6)],
      ['cache', 'stats'],
      ['config', 'show'],
      ['config', 'path'],
      ['limiter', 'status'],
      ['breaker', 'status'],
      ['breaker', 'history'],
      ['pipelines', 'list'],
    ]) {
      const r = await runCli(args, { cwd: p.cwd, env });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.notEqual(r.stdout, '', `${args.join(' ')} prints its result on stdout`);
      assert.equal(r.stdout.includes('\u001b['), false, `${args.join(' ')}: no colour in a pipe`);
      if (args[0] !== 'pipelines') assert.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
    }
    // `flashcards batches list | grep <id>`: the batch's row is one line with its status and cost.
    const list = await runCli(['batches', 'list'], { cwd: p.cwd, env });
    const row = list.stdout.split('\n').filter((l) => l.includes(batchId));
    assert.equal(row.length, 1, list.stdout);
    assert.match(
      row[0] ?? '',
      new RegExp(
        `│ ${batchId} │ \\S*korean-20\\.csv │ .* │ done +│ 20/0/20 +│ \\d+ +│ \\$\\d+\\.\\d{4} │ gpt-4o-mini │`,
      ),
    );
    const listed = JSON.parse((await runCli(['batches', 'list', '--json'], { cwd: p.cwd, env })).stdout) as {
      batches: { cost: number | null }[];
    };
    assert.equal(typeof listed.batches[0]?.cost, 'number');

    const path = await runCli(['config', 'path', '--json'], { cwd: p.cwd, env });
    assert.equal(path.code, 0, path.stderr);
    assert.deepEqual(JSON.parse(path.stdout), {
      configFile: join(p.cwd, '.flashcardrc'),
      dataDir: p.home,
      searchedFrom: p.cwd,
    });
  });

  test('doctor with a model the provider does not list fails (exit 1), naming the close match', async () => {
    const p = await freshProject();
    const env = { ...p.env, FLASHCARDS_BASE_URL: server.url, OPENAI_API_KEY: API_KEY };
    const r = await runCli(['doctor', '--model', 'gpt-4o-mnii'], { cwd: p.cwd, env });
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      /│ provider\s+│ fail\s+│ GET http:\/\/127\.0\.0\.1:\d+\/v1\/models: HTTP 200, but the model gpt-4o-mnii is not among the 3 it lists \(did you mean gpt-4o-mini\?\)/,
    );
    assert.match(r.stdout, /use --model gpt-4o-mini \(the model comes from --model\)/);
    assert.match(r.stdout, /^1 of 7 checks did not pass$/m);
  });

  test('breaker isolate --key with a key no breaker has exits 2 and creates nothing', async () => {
    const p = await freshProject();
    const r = await runCli(['breaker', 'isolate', '--key', 'nope'], { cwd: p.cwd, env: p.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: no circuit breaker with key "nope"$/m);
    assert.match(r.stderr, /^hint: no breaker exists yet; pass --create/m);
    assert.equal(existsSync(join(p.home, 'state.db')), false);
  });

  test('a CSV piped on stdin is read as CSV by process, as by the dry run', async () => {
    const p = await freshProject();
    const csv = readFileSync(fixture, 'utf8');
    const env = { ...p.env, FLASHCARDS_PROVIDER: 'mock' };
    const dry = await runCli(['process', '-', '--dry-run', '--json'], { cwd: p.cwd, env, input: csv });
    assert.equal(dry.code, 0, dry.stderr);
    const d = JSON.parse(dry.stdout) as DryRun;
    assert.equal(d.format, 'csv');
    assert.equal(d.items, 20);

    const r = await runCli(['process', '-', '--format', 'jsonl', '-o', '-', '--quiet', '--rpm', '60000'], {
      cwd: p.cwd,
      env,
      input: csv,
    });
    assert.equal(r.code, 0, r.stderr);
    const terms = new Set(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { term: string }).term),
    );
    assert.equal(terms.size, 20);
    assert.equal(terms.has('position,term,type'), false, 'the header row is not a term');
    assert.equal(terms.has('내가'), true);
  });
});
