import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cliEnv, runCli, tempDir } from './support/cli.ts';
import { type MockServer, type MockSettings, startMockServer } from './support/mock-server.ts';

/**
 * Issue 18, items 5 and 10, from the outside: `process --batch <id>` needs no input and reads none,
 * `--dry-run --batch <id>` estimates what that batch has left, and a dry run says which limit its
 * time comes from and checks the output path as the run would. The built CLI against the mock.
 */

const API_KEY = 'sk-test-resume-0123456789abcdef';
const servers: MockServer[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function project(settings: Partial<MockSettings> = {}, n = 12) {
  const server = await startMockServer({ seed: 5, ...settings });
  servers.push(server);
  const dir = tempDir();
  dirs.push(dir);
  const input = join(dir, 'words.txt');
  writeFileSync(input, `${Array.from({ length: n }, (_, i) => `낱말${i}`).join('\n')}\n`);
  const env = cliEnv({
    FLASHCARDS_HOME: join(dir, 'home'),
    FLASHCARDS_API_KEY: API_KEY,
    FLASHCARDS_BASE_URL: server.url,
  });
  const run = (args: string[]) => runCli(args, { env, cwd: dir });
  return { server, dir, input, env, run };
}

interface Summary {
  batchId: string;
  requests: number;
  items: { total: number; succeeded: number; failed: number };
}

interface DryRun {
  input: string;
  items: number;
  jobs: number;
  cacheHits: number;
  calls: number;
  estimatedDurationMs: number;
  pace: {
    requestsPerMinute: number;
    boundBy: string;
    rpm: { value: number; from: string } | null;
    said: string;
  };
  output: { path: string | null; format: string };
  batch: {
    id: string;
    total: number;
    done: number;
    failed: number;
    toDo: number;
    retryFailed: boolean;
  } | null;
}

interface Shown {
  stages: { stage: string; done: number; failed: number; pending: number }[];
}

describe('process --batch <id>: no input needed, none read', () => {
  test('--dry-run --batch estimates the batch’s unfinished stages; the run then sends exactly that, without its input', async () => {
    const p = await project({ error500: 0.3 });
    const first = await p.run([
      'process',
      'words.txt',
      '--format',
      'jsonl',
      '-o',
      'deck.jsonl',
      '--concurrency',
      '1',
      '--max-attempts',
      '1',
      // A 500 fails its item at once, not after a minute of retries.
      '--retry-window',
      '0',
      '--json',
    ]);
    assert.equal(first.code, 1, first.stderr);
    const s1 = JSON.parse(first.stdout) as Summary;
    assert.ok(s1.items.failed > 0 && s1.items.succeeded > 0, JSON.stringify(s1.items));
    const shown = JSON.parse((await p.run(['batches', 'show', s1.batchId, '--json'])).stdout) as Shown;
    const unfinishedJobs = shown.stages.reduce((n, s) => n + s.failed + s.pending, 0);
    // The batch holds its items: the input file is not needed any more.
    rmSync(p.input);

    const left = await p.run(['process', '--batch', s1.batchId, '--dry-run', '--json']);
    assert.equal(left.code, 0, left.stderr);
    const none = JSON.parse(left.stdout) as DryRun;
    assert.equal(none.input, 'words.txt');
    assert.deepEqual([none.items, none.jobs, none.calls], [0, 0, 0]);
    assert.deepEqual(none.batch, {
      id: s1.batchId,
      total: 12,
      done: s1.items.succeeded,
      failed: s1.items.failed,
      toDo: 0,
      retryFailed: false,
    });
    const human = await p.run(['process', '--batch', s1.batchId, '--dry-run']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(
        `│ input\\s+│ batch ${s1.batchId} \\(words\\.txt\\): 0 of 12 items to do \\(${s1.items.failed} failed, not counted: add --retry-failed\\)\\s+│`,
      ),
    );

    const retry = await p.run(['process', '--batch', s1.batchId, '--retry-failed', '--dry-run', '--json']);
    assert.equal(retry.code, 0, retry.stderr);
    const d = JSON.parse(retry.stdout) as DryRun;
    assert.equal(d.items, s1.items.failed);
    // Only the stages not done: an item that failed at its second stage needs one job, not two.
    assert.equal(d.jobs, unfinishedJobs);
    assert.equal(d.cacheHits + d.calls, d.jobs);
    // Without -o or an input, the deck goes where the batch's last run wrote it, in its format.
    assert.deepEqual(d.output, { path: join(p.dir, 'deck.jsonl'), format: 'jsonl' });

    p.server.set({ error500: 0 });
    p.server.clear();
    rmSync(join(p.dir, 'deck.jsonl'));
    const resumed = await p.run(['process', '--batch', s1.batchId, '--retry-failed', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const s2 = JSON.parse(resumed.stdout) as Summary;
    assert.equal(s2.batchId, s1.batchId);
    assert.equal(s2.items.succeeded, 12);
    assert.equal(p.server.requests.filter((r) => r.path.endsWith('/chat/completions')).length, d.calls);
    const cards = readFileSync(join(p.dir, 'deck.jsonl'), 'utf8').trim().split('\n');
    assert.ok(cards.length >= 12);
    assert.equal((JSON.parse(cards[0] ?? '{}') as { term: string }).term, '낱말0');

    // -o names another file; --stdout is the deck on stdout, as with an input.
    const other = await p.run(['process', '--batch', s1.batchId, '-o', 'again.csv', '-q']);
    assert.equal(other.code, 0, other.stderr);
    assert.match(readFileSync(join(p.dir, 'again.csv'), 'utf8'), /^term,Front,Back,tags\r\n/);
  });

  test('a named batch is not read from stdin either; a missing input without --batch is one usage line', async () => {
    const p = await project();
    const first = await p.run(['process', 'words.txt', '-o', 'deck.tsv', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const id = (JSON.parse(first.stdout) as Summary).batchId;
    const piped = await runCli(['process', '-', '--batch', id, '--stdout', '-q'], {
      env: p.env,
      cwd: p.dir,
      input: 'not a word list\n',
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, /^낱말0\t/m);
    assert.doesNotMatch(piped.stdout, /not a word list/);

    const missing = await p.run(['process', '-o', 'deck.tsv']);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, "error: missing required argument 'input'\n");
    const unknown = await p.run(['process', '--batch', 'bnope', '--dry-run']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^error: no batch bnope$/m);
  });
});

describe('process --dry-run: the limit it runs at, and the output path', () => {
  test('the time comes from the limit learned from the provider’s headers, or the one told; and says which', async () => {
    const p = await project({ rpm: 6000 });
    const first = await p.run(['process', 'words.txt', '-o', 'deck.tsv', '-q']);
    assert.equal(first.code, 0, first.stderr);
    writeFileSync(join(p.dir, 'more.txt'), '새말1\n새말2\n새말3\n');

    const learned = await p.run(['process', 'more.txt', '--dry-run', '--json']);
    assert.equal(learned.code, 0, learned.stderr);
    const d = JSON.parse(learned.stdout) as DryRun;
    assert.equal(d.calls, 6);
    assert.equal(d.pace.boundBy, 'rpm');
    assert.deepEqual({ value: d.pace.rpm?.value, from: d.pace.rpm?.from }, { value: 6000, from: 'headers' });
    assert.equal(d.estimatedDurationMs, 60);
    const table = await p.run(['process', 'more.txt', '--dry-run']);
    assert.match(table.stdout, /│ time\s+│ ~60ms at ~6000 requests\/min\s+│/);
    assert.match(
      table.stdout,
      /│ limit\s+│ 6000 requests\/min, learned from the provider's headers on \d{4}-\d{2}-\d{2}\s+│/,
    );

    // A configured limit above the provider's is a ceiling the provider lowers; one below it holds.
    const told = await p.run(['process', 'more.txt', '--dry-run', '--rpm', '60']);
    assert.match(told.stdout, /│ time\s+│ ~6\.0s at ~60 requests\/min\s+│/);
    assert.match(told.stdout, /│ limit\s+│ 60 requests\/min, told by --rpm\s+│/);
  });

  test('an output path the run could not write fails the dry run the same way, creating nothing', async () => {
    const p = await project();
    const r = await p.run(['process', 'words.txt', '--dry-run', '-o', 'missing/deck.tsv']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: .*missing\/ does not exist/m);
    assert.match(r.stderr, /^hint: .*mkdir -p missing\//m);
    const apkg = await p.run(['process', 'words.txt', '--dry-run', '--format', 'apkg', '--stdout']);
    assert.equal(apkg.code, 2, apkg.stderr);
    assert.match(apkg.stderr, /^error: an \.apkg package cannot be written to stdout$/m);
    assert.equal(existsSync(join(p.dir, 'home')), false, 'a dry run creates no data directory');
  });
});
