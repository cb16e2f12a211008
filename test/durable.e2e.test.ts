import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { type CliRun, cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import { type MockServer, type MockSettings, startMockServer } from './support/mock-server.ts';

/**
 * Issue 6, from the outside: the built CLI against the mock provider, killed, interrupted, run twice
 * at once, and its batches inspected and exported. Every test has its own data directory and mock.
 */

const API_KEY = 'sk-test-durable-0123456789abcdef';

const servers: MockServer[] = [];
const homes: string[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const dir of homes) rmSync(dir, { recursive: true, force: true });
});

async function mock(settings: Partial<MockSettings> = {}): Promise<MockServer> {
  const server = await startMockServer({ seed: 11, ...settings });
  servers.push(server);
  return server;
}

interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
  input: string;
  words: string[];
  out: string;
  /** `process <input> --format jsonl -o <out>` plus extra arguments: the command a user would repeat. */
  args: (...extra: string[]) => string[];
}

function home(server: MockServer, n: number, prefix = '낱말'): Home {
  const dir = tempDir();
  homes.push(dir);
  const words = Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
  const input = join(dir, 'words.txt');
  writeFileSync(input, `${words.join('\n')}\n`);
  const out = join(dir, 'deck.jsonl');
  const env = cliEnv({
    FLASHCARDS_HOME: dir,
    FLASHCARDS_API_KEY: API_KEY,
    FLASHCARDS_BASE_URL: server.url,
  });
  return {
    dir,
    env,
    input,
    words,
    out,
    args: (...extra) => ['process', input, '--format', 'jsonl', '-o', out, '--no-progress', ...extra],
  };
}

interface Card {
  term: string;
  item: number;
}

function readCards(path: string): Card[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Card);
}

function cardsPerTerm(cards: readonly Card[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of cards) counts.set(c.term, (counts.get(c.term) ?? 0) + 1);
  return counts;
}

/** Chat requests as the provider saw them: one key per distinct prompt (stage, model, messages). */
function chatKeys(server: MockServer): string[] {
  return server.requests
    .filter((r) => r.path.endsWith('/chat/completions'))
    .map((r) => {
      const body = r.body as {
        model?: string;
        messages?: unknown;
        response_format?: { json_schema?: { name?: string } };
      };
      return `${body.response_format?.json_schema?.name ?? '?'} ${body.model} ${JSON.stringify(body.messages)}`;
    });
}

/** Requests whose exact body the provider had already received before. */
function repeatedRequests(server: MockServer): number {
  const keys = chatKeys(server);
  return keys.length - new Set(keys).size;
}

function stage(server: MockServer, name: string): number {
  return chatKeys(server).filter((k) => k.startsWith(`${name} `)).length;
}

/** Every term of the input has cards, and the cards of each item are contiguous and in input order. */
function assertCompleteDeck(cards: readonly Card[], words: readonly string[]): void {
  assert.deepEqual([...new Set(cards.map((c) => c.term))], words);
  let last = -1;
  for (const c of cards) {
    assert.equal(c.term, words[c.item], `card of item ${c.item} carries its own term`);
    assert.ok(c.item >= last, `item ${c.item} comes after item ${last}`);
    last = c.item;
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** stderr of a running CLI, as it arrives. */
function liveStderr(run: CliRun): () => string {
  let text = '';
  run.child.stderr?.on('data', (d: string) => (text += d));
  return () => text;
}

function summaryOf(stdout: string): {
  batchId: string;
  status: string;
  requests: number;
  cacheHits: number;
  items: { total: number; succeeded: number; failed: number; pending: number; skipped: number };
} {
  return JSON.parse(stdout);
}

interface Shown {
  id: string;
  status: string;
  counts: { total: number; done: number; failed: number; pending: number; leased: number };
  stages: { stage: string; total: number; done: number; failed: number; pending: number; requests: number }[];
  timingMs: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  failures: { item: number; term: string; errorKind: string; message: string }[];
}

async function show(h: Home, id: string): Promise<Shown> {
  const r = await runCli(['batches', 'show', id, '--json'], { env: h.env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Shown;
}

function batchIdIn(stderr: string): string {
  const m = /batch (b[0-9a-f]{11}(?:-[0-9a-f]+)?)/.exec(stderr);
  assert.ok(m, `stderr names the batch: ${stderr}`);
  return m[1]!;
}

describe('durable batches: crashes and concurrent runs', () => {
  test('kill -9 mid-run, then the same command: every item once, as many cards as a clean run, at most 16 requests repeated', async (t) => {
    // A clean run elsewhere gives the expected deck (mock content depends only on the term).
    const cleanServer = await mock();
    const clean = home(cleanServer, 150);
    const c = await runCli(clean.args('--quiet'), { env: clean.env });
    assert.equal(c.code, 0, c.stderr);
    const expected = cardsPerTerm(readCards(clean.out));
    assert.equal(expected.size, 150);

    // ~100 ms, spread out: with a fixed latency all 8 slots answer in lockstep, and a kill right after a
    // wave also loses the answers still in the 20 ms write-behind window (up to 13 repeats measured).
    const server = await mock({ latencyMs: [50, 150] });
    const h = home(server, 150);
    writeFileSync(h.out, 'previous deck\n');
    const started = Date.now();
    const first = startCli(h.args('--concurrency', '8'), { env: h.env });
    // ~2.5 s in, and certainly mid-run (150 items x 2 stages x ~100 ms / 8 takes about 3.75 s).
    await waitFor('the first run to get going', () => {
      const sent = chatKeys(server).length;
      return (Date.now() - started >= 2500 || sent >= 220) && sent >= 16;
    });
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');
    const beforeKill = chatKeys(server).length;
    assert.ok(beforeKill < 300, `the first run was still working when killed (${beforeKill} requests)`);
    assert.equal(readFileSync(h.out, 'utf8'), 'previous deck\n', 'the old deck is untouched');

    const again = await runCli(h.args('--concurrency', '8'), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resuming batch/);
    const cards = readCards(h.out);
    assertCompleteDeck(cards, h.words);
    assert.deepEqual(cardsPerTerm(cards), expected);
    assert.deepEqual(
      readdirSync(h.dir).filter((f) => f.includes('.tmp')),
      [],
      'no temp file is left beside the deck',
    );
    const repeated = repeatedRequests(server);
    t.diagnostic(
      `killed after ${beforeKill} requests; resumed run sent ${chatKeys(server).length - beforeKill}; repeated ${repeated}`,
    );
    assert.ok(repeated <= 16, `${repeated} requests repeated`);
    assert.equal(new Set(chatKeys(server)).size, 300, 'every job was requested');
  });

  test('two processes started together on the same input split the work: both exit 0, no request sent twice, one complete deck', async (t) => {
    const server = await mock({ latencyMs: [20, 60] });
    const h = home(server, 100);
    const args = h.args('--concurrency', '4', '--json');
    const [a, b] = await Promise.all([runCli(args, { env: h.env }), runCli(args, { env: h.env })]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const sa = summaryOf(a.stdout);
    const sb = summaryOf(b.stdout);
    assert.equal(sa.batchId, sb.batchId);
    t.diagnostic(`split: ${sa.requests} + ${sb.requests} requests`);
    assert.equal(repeatedRequests(server), 0);
    assert.equal(chatKeys(server).length, 200);
    assert.equal(sa.requests + sb.requests, 200);
    assert.equal(sa.items.succeeded, 100);
    assert.equal(sb.items.succeeded, 100);
    assertCompleteDeck(readCards(h.out), h.words);
    assert.deepEqual(
      readdirSync(h.dir).filter((f) => f.includes('deck')),
      ['deck.jsonl'],
    );
  });

  test('when one of two cooperating runs is killed -9, the other takes over its leased items and finishes the batch', async (t) => {
    const server = await mock({ latencyMs: [50, 150] });
    const h = home(server, 60);
    const args = h.args('--concurrency', '4', '--rpm', '60000', '--json');
    const a = startCli(args, { env: h.env });
    const b = startCli(args, { env: h.env });
    await waitFor('both runs to be working', () => chatKeys(server).length >= 30);
    a.child.kill('SIGKILL');
    assert.equal((await a.done).signal, 'SIGKILL');
    const rb = await b.done;
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(summaryOf(rb.stdout).items.succeeded, 60);
    assertCompleteDeck(readCards(h.out), h.words);
    const repeated = repeatedRequests(server);
    t.diagnostic(`repeated after killing one of two runs: ${repeated}`);
    // The killed run's requests in flight, plus answers it got in its last write-behind window (20 ms).
    assert.ok(repeated <= 2 * 4, `${repeated} requests repeated`);
  });

  test('a lease held by a run on another host is waited for until it expires; one left by a dead local process is taken at once', async () => {
    const server = await mock();
    const h = home(server, 20);
    const r1 = await runCli(h.args('--json'), { env: h.env });
    assert.equal(r1.code, 0, r1.stderr);
    const id = summaryOf(r1.stdout).batchId;

    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const db = new Database(join(h.dir, 'state.db'));
    try {
      db.pragma('busy_timeout = 5000');
      const now = Date.now();
      const lease = db.prepare(
        `UPDATE items SET status = 'pending', owner = ?, lease_until = ? WHERE batch_id = ? AND idx BETWEEN ? AND ?`,
      );
      lease.run('elsewhere.example:4242:cafe0001', now + 1500, id, 0, 2);
      lease.run(`${hostname()}:${dead}:dead0001`, now + 600_000, id, 3, 5);
      db.prepare(
        `UPDATE jobs SET status = 'pending', result = NULL WHERE batch_id = ? AND stage = 'cards' AND idx <= 5`,
      ).run(id);
      db.prepare(`UPDATE batches SET status = 'running' WHERE id = ?`).run(id);
    } finally {
      db.close();
    }

    const r2 = await runCli(h.args('--json'), { env: h.env });
    assert.equal(r2.code, 0, r2.stderr);
    const s = summaryOf(r2.stdout);
    assert.deepEqual(s.items, { total: 20, succeeded: 20, failed: 0, pending: 0, skipped: 14 });
    assertCompleteDeck(readCards(h.out), h.words);
    const shown = await show(h, id);
    assert.deepEqual(shown.counts, { total: 20, done: 20, failed: 0, pending: 0, leased: 0 });
  });
});

describe('durable batches: signals and cron', () => {
  test('first SIGINT with requests in flight lets them finish, exits 130 and says how to resume; the rerun repeats nothing', async () => {
    const server = await mock({ latencyMs: 1000 });
    const h = home(server, 30);
    // A configured rate skips the limiter's single learning request, so 4 requests go out at once.
    const run = startCli(h.args('--concurrency', '4', '--rpm', '60000'), { env: h.env });
    await waitFor('4 requests in flight', () => server.stats.inFlight >= 4);
    const inFlight = chatKeys(server).length;
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT: stopping/);
    assert.match(r.stderr, /run the same command again to resume batch b[0-9a-f]{11}/);
    const id = batchIdIn(r.stderr);
    const sent = server.requests.filter((q) => q.path.endsWith('/chat/completions'));
    assert.ok(sent.length >= inFlight);
    assert.deepEqual(
      sent.map((q) => q.status),
      sent.map(() => 200),
      'every request in flight was answered, none cancelled',
    );
    const shown = await show(h, id);
    assert.equal(shown.status, 'interrupted');
    assert.equal(shown.counts.leased, 0, 'leases handed back');
    assert.ok(shown.counts.pending > 0);

    server.set({ latencyMs: 0 });
    const again = await runCli(h.args(), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
    assert.equal(repeatedRequests(server), 0, 'answers received during the grace period were kept');
  });

  test('a second SIGTERM quits at once, leaving no lease or run registration behind; the rerun finishes', async () => {
    const server = await mock({ latencyMs: 5000 });
    const h = home(server, 20);
    const run = startCli(h.args('--concurrency', '4', '--rpm', '60000'), { env: h.env });
    const stderr = liveStderr(run);
    await waitFor('requests in flight', () => server.stats.inFlight >= 4);
    const answered = (): number => server.requests.filter((q) => q.status !== 0).length;
    const answeredBefore = answered();
    run.child.kill('SIGTERM');
    await waitFor('the first signal to be acknowledged', () => /SIGTERM: stopping/.test(stderr()));
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /quitting now; run the same command again to resume/);
    assert.equal(answered(), answeredBefore, 'it did not wait for the 5 s answers in flight');
    const id = batchIdIn(r.stderr);
    const shown = await show(h, id);
    assert.equal(shown.counts.leased, 0, 'leases released on the way out');
    const db = new Database(join(h.dir, 'state.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT owner FROM runs').all(), []);
    } finally {
      db.close();
    }

    server.set({ latencyMs: 0 });
    const again = await runCli(h.args(), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
  });

  test('--max-duration stops cleanly with exit 3 and a resume hint; the rerun finishes without repeating a request', async () => {
    const server = await mock({ latencyMs: 700 });
    const h = home(server, 30);
    const r = await runCli(h.args('--concurrency', '2', '--max-duration', '2s'), { env: h.env });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /error: the run reached its --max-duration; \d+ item\(s\) left/);
    assert.match(r.stderr, /hint: run the same command again to resume batch b[0-9a-f]{11}/);
    const shown = await show(h, batchIdIn(r.stderr));
    assert.ok(shown.counts.pending > 0);
    assert.equal(shown.counts.leased, 0);
    assert.equal(existsSync(h.out), false, 'no partial deck is written');

    server.set({ latencyMs: 0 });
    const again = await runCli(h.args('--concurrency', '2', '--max-duration', '2m'), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
    assert.equal(repeatedRequests(server), 0);
  });

  test('--lock exits 4 at once while another run works on the batch, and runs normally once that run is gone', async () => {
    const server = await mock({ latencyMs: 500 });
    const h = home(server, 30);
    const first = startCli(h.args('--concurrency', '2'), { env: h.env });
    const stderr = liveStderr(first);
    await waitFor('the first run to register', () => /created batch/.test(stderr()));
    const locked = await runCli(h.args('--lock'), { env: h.env });
    assert.equal(locked.code, 4, locked.stderr);
    assert.match(locked.stderr, /error: another run \(pid \d+\) is working on batch b[0-9a-f]{11}/);
    assert.match(locked.stderr, /hint: /);
    assert.equal(first.child.exitCode, null, 'the first run is still going');
    first.child.kill('SIGKILL');
    await first.done;

    server.set({ latencyMs: 0 });
    const again = await runCli(h.args('--lock'), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
  });

  test('a run started without --lock exits 4 beside a --lock run', async () => {
    const server = await mock({ latencyMs: 500 });
    const h = home(server, 30);
    const first = startCli(h.args('--concurrency', '2', '--lock'), { env: h.env });
    const stderr = liveStderr(first);
    await waitFor('the first run to register', () => /created batch/.test(stderr()));
    const second = await runCli(h.args(), { env: h.env });
    assert.equal(second.code, 4, second.stderr);
    assert.match(second.stderr, /holds --lock/);
    first.child.kill('SIGKILL');
    await first.done;
  });

  test('without a terminal: plain progress lines every interval, no colour or spinner; --quiet prints nothing', async () => {
    const server = await mock({ latencyMs: 60 });
    const h = home(server, 30);
    // Colour could be on (no NO_COLOR, a colour TERM): only the missing terminal turns it off.
    const { NO_COLOR: _noColor, ...base } = h.env;
    const env: NodeJS.ProcessEnv = { ...base, FLASHCARDS_PROGRESS_INTERVAL: '200ms', TERM: 'xterm-256color' };
    const args = ['process', h.input, '--format', 'jsonl', '-o', h.out, '--concurrency', '2'];
    const r = await runCli(args, { env });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('progress: '));
    assert.ok(lines.length >= 2, r.stderr);
    for (const l of lines) assert.match(l, /^progress: \d+\/30 items \| /);
    assert.equal(r.stderr.includes('\u001b['), false, 'no ANSI escape codes');
    assert.doesNotMatch(r.stderr, /[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);

    const quiet = await runCli([...args, '--quiet', '--new'], { env });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    assert.equal(quiet.stdout, '');
  });
});

describe('durable batches: identity and the batches commands', () => {
  test('the same input and settings resume one batch; --new, other settings and --batch <id> behave as documented', async () => {
    const server = await mock();
    const h = home(server, 20);
    const r1 = await runCli(h.args('--json'), { env: h.env });
    assert.equal(r1.code, 0, r1.stderr);
    const id = summaryOf(r1.stdout).batchId;
    const deck = readFileSync(h.out);
    assert.equal(chatKeys(server).length, 40);

    // Same bytes under another name: the same batch, nothing requested.
    const copy = join(h.dir, 'copy.txt');
    writeFileSync(copy, readFileSync(h.input));
    const r2 = await runCli(['process', copy, '--format', 'jsonl', '-o', h.out, '--json'], { env: h.env });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(summaryOf(r2.stdout).batchId, id);
    assert.equal(summaryOf(r2.stdout).items.skipped, 20);
    assert.deepEqual(readFileSync(h.out), deck);

    const fresh = summaryOf((await runCli(h.args('--json', '--new'), { env: h.env })).stdout);
    assert.notEqual(fresh.batchId, id);
    assert.equal(fresh.items.skipped, 0);
    const other = summaryOf(
      (await runCli(h.args('--json', '--model', 'other-model'), { env: h.env })).stdout,
    );
    assert.notEqual(other.batchId, id);
    assert.notEqual(other.batchId, fresh.batchId);
    const named = summaryOf(
      (await runCli(h.args('--json', '--batch', fresh.batchId), { env: h.env })).stdout,
    );
    assert.equal(named.batchId, fresh.batchId);
    assert.equal(named.items.skipped, 20);
    const missing = await runCli(h.args('--batch', 'bdoesnotexist'), { env: h.env });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /no batch bdoesnotexist/);

    const list = await runCli(['batches', 'list', '--json'], { env: h.env });
    assert.equal(list.code, 0, list.stderr);
    const ids = (JSON.parse(list.stdout) as { batches: { id: string }[] }).batches.map((b) => b.id);
    assert.deepEqual([...ids].sort(), [id, fresh.batchId, other.batchId].sort());
    // Only the first run and the other model reached the provider; everything else was resumed or cached.
    assert.equal(repeatedRequests(server), 0);
  });

  test('--batch <id> never finishes a batch with settings other than its own', async () => {
    const server = await mock({ seed: 5, error500: 0.25 });
    const h = home(server, 20);
    const first = h.args('--model', 'first-model', '--concurrency', '1', '--max-attempts', '1', '--json');
    const r1 = await runCli(first, { env: h.env });
    assert.equal(r1.code, 1, r1.stderr);
    const id = summaryOf(r1.stdout).batchId;
    server.clear();
    server.set({ error500: 0 });
    // Either refusing or using the batch's own model is fine; mixing two models in one deck is not.
    await runCli(h.args('--batch', id, '--retry-failed', '--model', 'second-model'), { env: h.env });
    const models = server.requests.map((q) => (q.body as { model?: string }).model);
    assert.deepEqual(
      models.filter((m) => m !== 'first-model'),
      [],
    );
  });

  test('batches list, show, retry, export (with the provider gone) and rm', async () => {
    const server = await mock({ seed: 5, error500: 0.25 });
    const h = home(server, 20);
    // One request at a time and one attempt each: the seeded faults hit the same jobs every run.
    const args = h.args('--concurrency', '1', '--max-attempts', '1', '--json');
    const r1 = await runCli(args, { env: h.env });
    assert.equal(r1.code, 1, r1.stderr);
    const s1 = summaryOf(r1.stdout);
    assert.ok(s1.items.failed > 0 && s1.items.succeeded > 0, JSON.stringify(s1.items));

    const list = await runCli(['batches', 'list', '--json'], { env: h.env });
    assert.equal(list.code, 0, list.stderr);
    const listed = (JSON.parse(list.stdout) as { batches: Record<string, unknown>[] }).batches;
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.['id'], s1.batchId);
    assert.equal(listed[0]?.['status'], 'failed');
    assert.equal(listed[0]?.['done'], s1.items.succeeded);
    assert.equal(listed[0]?.['failed'], s1.items.failed);
    assert.equal(listed[0]?.['total'], 20);
    assert.equal(listed[0]?.['requests'], s1.requests);

    const shown = await show(h, s1.batchId);
    assert.equal(shown.status, 'failed');
    assert.deepEqual(shown.counts, {
      total: 20,
      done: s1.items.succeeded,
      failed: s1.items.failed,
      pending: 0,
      leased: 0,
    });
    assert.deepEqual(
      shown.stages.map((s) => s.stage),
      ['analyze', 'cards'],
    );
    const [analyze, cardsStage] = shown.stages;
    assert.equal(analyze?.done, 20 - (analyze?.failed ?? 0));
    assert.equal(cardsStage?.done, s1.items.succeeded);
    assert.equal((analyze?.failed ?? 0) + (cardsStage?.failed ?? 0), s1.items.failed);
    assert.equal((analyze?.requests ?? 0) + (cardsStage?.requests ?? 0), s1.requests);
    assert.equal(shown.failures.length, s1.items.failed);
    for (const f of shown.failures) {
      assert.equal(f.errorKind, 'server');
      assert.match(f.message, /HTTP 500/);
      assert.equal(f.term, h.words[f.item]);
    }
    for (const p of ['p50', 'p90', 'p99', 'max'] as const) assert.equal(typeof shown.timingMs[p], 'number');
    const human = await runCli(['batches', 'show', s1.batchId], { env: h.env });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stderr, /analyze/);
    assert.match(human.stderr, /request time: p50/);
    assert.match(human.stderr, /failed item \d+ ".+": server: /);

    const retry = await runCli(['batches', 'retry', s1.batchId], { env: h.env });
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(
      retry.stderr,
      new RegExp(`^${s1.items.failed} failed item\\(s\\) of ${s1.batchId} queued again`),
    );
    const requeued = await show(h, s1.batchId);
    assert.deepEqual(requeued.counts, {
      total: 20,
      done: s1.items.succeeded,
      failed: 0,
      pending: s1.items.failed,
      leased: 0,
    });
    assert.deepEqual(requeued.failures, []);

    server.set({ error500: 0 });
    const r2 = await runCli(args, { env: h.env });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(summaryOf(r2.stdout).items.succeeded, 20);
    const deck = readFileSync(h.out, 'utf8');
    assertCompleteDeck(readCards(h.out), h.words);

    // No provider at all from here on.
    await server.close();
    const exported = join(h.dir, 'exported.jsonl');
    const ex = await runCli(['batches', 'export', s1.batchId, '-o', exported], { env: h.env });
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stderr, /wrote \d+ cards for 20 of 20 items/);
    assert.equal(readFileSync(exported, 'utf8'), deck);
    const toStdout = await runCli(['batches', 'export', s1.batchId, '-o', '-'], { env: h.env });
    assert.equal(toStdout.code, 0, toStdout.stderr);
    assert.equal(toStdout.stdout, deck);
    const anki = join(h.dir, 'exported.tsv');
    const ea = await runCli(['batches', 'export', s1.batchId, '-o', anki, '--format', 'anki'], {
      env: h.env,
    });
    assert.equal(ea.code, 0, ea.stderr);
    assert.match(readFileSync(anki, 'utf8'), /^#separator:tab\n/);
    assert.match(readFileSync(anki, 'utf8'), /#deck:Korean Vocabulary/);

    const rm = await runCli(['batches', 'rm', s1.batchId], { env: h.env });
    assert.equal(rm.code, 0, rm.stderr);
    const afterRm = await runCli(['batches', 'list', '--json'], { env: h.env });
    assert.deepEqual(JSON.parse(afterRm.stdout), { batches: [] });
    const gone = await runCli(['batches', 'show', s1.batchId], { env: h.env });
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, /no batch/);
    const db = new Database(join(h.dir, 'state.db'), { readonly: true });
    try {
      for (const table of ['items', 'jobs', 'runs']) {
        assert.deepEqual(db.prepare(`SELECT count(*) AS n FROM ${table}`).get(), { n: 0 }, table);
      }
    } finally {
      db.close();
    }
  });

  test('--retry-failed queues failed items again and requests only the stages that did not finish, even without the cache', async () => {
    const server = await mock({ seed: 5, error500: 0.25 });
    const h = home(server, 20);
    const args = h.args('--concurrency', '1', '--max-attempts', '1', '--no-cache', '--json');
    const r1 = await runCli(args, { env: h.env });
    assert.equal(r1.code, 1, r1.stderr);
    const id = summaryOf(r1.stdout).batchId;
    const [analyze, cardsStage] = (await show(h, id)).stages;
    assert.ok((cardsStage?.failed ?? 0) > 0, 'some items failed in their second stage');

    server.clear();
    server.set({ error500: 0 });
    const plain = await runCli(args, { env: h.env });
    assert.equal(plain.code, 1, 'failed items stay failed without --retry-failed');
    assert.equal(chatKeys(server).length, 0);

    const r2 = await runCli([...args, '--retry-failed'], { env: h.env });
    assert.equal(r2.code, 0, r2.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
    assert.equal(stage(server, 'cards'), (analyze?.failed ?? 0) + (cardsStage?.failed ?? 0));
    assert.equal(
      stage(server, 'analyze'),
      analyze?.failed ?? 0,
      'finished analyze stages are not requested again',
    );
  });
});
