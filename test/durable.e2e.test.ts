import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { extractTerm } from '../src/client/mock-fetch.ts';
import { type CliRun, cliEnv, runCli, startCli, tempDir } from './support/cli.ts';
import {
  type MockServer,
  type MockSettings,
  type RecordedRequest,
  startMockServer,
} from './support/mock-server.ts';

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
  return chatRequests(server.requests).map((r) => {
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

/** A job as "stage term": what a chat request asks for, and what a row of the jobs table records. */
function jobOf(request: RecordedRequest): string {
  const body = request.body as {
    messages?: { role: string; content: string }[];
    response_format?: { json_schema?: { name?: string } };
  };
  const user = body.messages?.find((m) => m.role === 'user')?.content ?? '';
  return `${body.response_format?.json_schema?.name ?? '?'} ${extractTerm(user)}`;
}

/** Chat requests that arrived whole (a process killed mid-write can leave a cut one behind). */
function chatRequests(requests: readonly RecordedRequest[]): RecordedRequest[] {
  return requests.filter(
    (r) => r.path.endsWith('/chat/completions') && typeof r.body === 'object' && r.body !== null,
  );
}

/** How many times the provider was asked for each job. */
function requestsPerJob(requests: readonly RecordedRequest[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const job of chatRequests(requests).map(jobOf)) counts.set(job, (counts.get(job) ?? 0) + 1);
  return counts;
}

/** The jobs state.db holds as done: what a killed run had committed. */
function committedJobs(dir: string): string[] {
  const db = new Database(join(dir, 'state.db'), { readonly: true });
  try {
    const rows = db
      .prepare(
        "SELECT j.stage AS stage, i.data AS data FROM jobs j JOIN items i ON i.batch_id = j.batch_id AND i.idx = j.idx WHERE j.status = 'done'",
      )
      .all() as { stage: string; data: string }[];
    return rows.map((r) => `${r.stage} ${(JSON.parse(r.data) as { term: string }).term}`);
  } finally {
    db.close();
  }
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

/**
 * stderr of a running CLI as it arrives, and a wait for it to match: the moment the CLI said
 * something (registered its batch, acknowledged a signal). Rejects if the CLI exits first.
 */
function liveStderr(run: CliRun): { text: () => string; shows: (pattern: RegExp) => Promise<void> } {
  let text = '';
  let closed = false;
  const waits: { pattern: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
  const check = (): void => {
    for (const w of [...waits]) {
      if (w.pattern.test(text)) w.resolve();
      else if (closed) w.reject(new Error(`the CLI exited before its stderr showed ${w.pattern}:\n${text}`));
      else continue;
      waits.splice(waits.indexOf(w), 1);
    }
  };
  run.child.stderr?.on('data', (d: string) => {
    text += d;
    check();
  });
  run.child.on('close', () => {
    closed = true;
    check();
  });
  return {
    text: () => text,
    shows: (pattern) =>
      new Promise((resolve, reject) => {
        waits.push({ pattern, resolve, reject });
        check();
      }),
  };
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
  test('kill -9 mid-run, then the same command: every item once, as many cards as a clean run, nothing committed requested again', async (t) => {
    // A clean run elsewhere gives the expected deck (mock content depends only on the term).
    const cleanServer = await mock();
    const clean = home(cleanServer, 150);
    const c = await runCli(clean.args('--quiet'), { env: clean.env });
    assert.equal(c.code, 0, c.stderr);
    const expected = cardsPerTerm(readCards(clean.out));
    assert.equal(expected.size, 150);

    // ~100 ms, spread out: with a fixed latency all 8 slots answer in lockstep.
    const server = await mock({ latencyMs: [50, 150] });
    const h = home(server, 150);
    writeFileSync(h.out, 'previous deck\n');
    const first = startCli(h.args('--concurrency', '8'), { env: h.env });
    // Half-way (150 of 300 requests) answers stop coming: the run cannot finish, whatever the
    // machine's speed, and is killed with requests in flight.
    await server.until(() => chatKeys(server).length >= 150);
    server.set({ hold: true });
    await server.until(() => server.stats.held >= 1);
    first.child.kill('SIGKILL');
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL');
    const beforeKill = chatKeys(server).length;
    assert.ok(beforeKill < 300, `the first run was still working when killed (${beforeKill} requests)`);
    assert.equal(readFileSync(h.out, 'utf8'), 'previous deck\n', 'the old deck is untouched');
    // What the killed run had committed, and the requests it never got an answer to.
    const committed = committedJobs(h.dir);
    const unanswered = chatRequests(server.requests)
      .filter((q) => q.status === 0)
      .map(jobOf);
    assert.ok(unanswered.length >= 1);
    server.set({ hold: false });

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
    // How many answers a kill loses (in flight, or in the last group-commit window) depends on
    // timing: a figure, not an assertion. What is certain: the rerun never asks again for a job
    // the killed run had committed, asks again for every one it had no answer to, and neither run
    // asks for a job twice.
    const repeated = repeatedRequests(server);
    t.diagnostic(
      `killed after ${beforeKill} requests, ${committed.length} jobs committed; resumed run sent ${chatKeys(server).length - beforeKill}; repeated ${repeated}`,
    );
    const perJob = requestsPerJob(server.requests);
    assert.equal(perJob.size, 300, 'every job was requested');
    for (const job of committed)
      assert.equal(perJob.get(job), 1, `${job} was committed, then requested again`);
    for (const job of unanswered)
      assert.equal(perJob.get(job), 2, `${job} was never answered, then not requested again`);
    for (const [job, n] of perJob) assert.ok(n <= 2, `${job} requested ${n} times`);
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
    await server.until(() => chatKeys(server).length >= 30);
    // Answers stop coming; more than 4 requests held means both runs (4 slots each) hold some:
    // A dies with leased items whose requests were never answered.
    server.set({ hold: true });
    await server.until(() => server.stats.held > 4);
    a.child.kill('SIGKILL');
    assert.equal((await a.done).signal, 'SIGKILL');
    server.set({ hold: false });
    const rb = await b.done;
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(summaryOf(rb.stdout).items.succeeded, 60);
    assertCompleteDeck(readCards(h.out), h.words);
    const repeated = repeatedRequests(server);
    // How many of A's answers were lost (in flight, or in its last group-commit window) depends on
    // timing: a figure. Certain: B asked again for A's unanswered requests, and for no job twice.
    t.diagnostic(`repeated after killing one of two runs: ${repeated}`);
    assert.ok(repeated >= 1, 'the killed run’s unanswered requests were sent again');
    const perJob = requestsPerJob(server.requests);
    assert.equal(perJob.size, 120, 'every job was requested');
    for (const [job, n] of perJob) assert.ok(n <= 2, `${job} requested ${n} times: at most once per run`);
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
    // Answers are held until the signal was acknowledged: they certainly arrive during the grace.
    const server = await mock({ hold: true });
    const h = home(server, 30);
    // A configured rate skips the limiter's single learning request, so 4 requests go out at once.
    const run = startCli(h.args('--concurrency', '4', '--rpm', '60000'), { env: h.env });
    const stderr = liveStderr(run);
    await server.until(() => server.stats.held >= 4);
    const inFlight = chatKeys(server).length;
    run.child.kill('SIGINT');
    await stderr.shows(/SIGINT: stopping/);
    server.set({ hold: false });
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

    const again = await runCli(h.args(), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
    assert.equal(repeatedRequests(server), 0, 'answers received during the grace period were kept');
  });

  test('a second SIGTERM quits at once, leaving no lease or run registration behind; the rerun finishes', async () => {
    // Answers in flight are held: they never arrive unless the run waits for them.
    const server = await mock({ hold: true });
    const h = home(server, 20);
    const run = startCli(h.args('--concurrency', '4', '--rpm', '60000'), { env: h.env });
    const stderr = liveStderr(run);
    await server.until(() => server.stats.held >= 4);
    const answered = (): number => server.requests.filter((q) => q.status !== 0).length;
    const answeredBefore = answered();
    run.child.kill('SIGTERM');
    await stderr.shows(/SIGTERM: stopping/);
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /quitting now; run the same command again to resume/);
    assert.equal(answered(), answeredBefore, 'it did not wait for the answers in flight');
    const id = batchIdIn(r.stderr);
    const shown = await show(h, id);
    assert.equal(shown.counts.leased, 0, 'leases released on the way out');
    const db = new Database(join(h.dir, 'state.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT owner FROM runs').all(), []);
    } finally {
      db.close();
    }

    server.set({ hold: false });
    const again = await runCli(h.args(), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
  });

  test('--max-duration stops cleanly with exit 3 and a resume hint; the rerun finishes without repeating a request', async () => {
    const server = await mock({ latencyMs: 700 });
    const h = home(server, 30);
    const r = await runCli(h.args('--concurrency', '2', '--max-duration', '2s'), { env: h.env });
    assert.equal(r.code, 3, r.stderr);
    // The deadline may find a job waiting for the limiter or one between requests: either wording.
    assert.match(
      r.stderr,
      /error: the run reached its --max-duration( while waiting for the rate limit)?; \d+ item\(s\) left/,
    );
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
    // Held answers: the first run cannot finish while the second one starts, however slow that is.
    const server = await mock({ hold: true });
    const h = home(server, 30);
    const first = startCli(h.args('--concurrency', '2'), { env: h.env });
    await liveStderr(first).shows(/created batch/);
    const locked = await runCli(h.args('--lock'), { env: h.env });
    assert.equal(locked.code, 4, locked.stderr);
    assert.match(locked.stderr, /error: another run \(pid \d+\) is working on batch b[0-9a-f]{11}/);
    assert.match(locked.stderr, /hint: /);
    assert.equal(first.child.exitCode, null, 'the first run is still going');
    first.child.kill('SIGKILL');
    await first.done;

    server.set({ hold: false });
    const again = await runCli(h.args('--lock'), { env: h.env });
    assert.equal(again.code, 0, again.stderr);
    assertCompleteDeck(readCards(h.out), h.words);
  });

  test('a run started without --lock exits 4 beside a --lock run', async () => {
    const server = await mock({ hold: true });
    const h = home(server, 30);
    const first = startCli(h.args('--concurrency', '2', '--lock'), { env: h.env });
    await liveStderr(first).shows(/created batch/);
    const second = await runCli(h.args(), { env: h.env });
    assert.equal(second.code, 4, second.stderr);
    assert.match(second.stderr, /holds --lock/);
    first.child.kill('SIGKILL');
    await first.done;
  });

  test('without a terminal: plain progress lines every interval, no colour or spinner; --quiet prints nothing', async () => {
    // Answers are held until two progress lines were printed: the run lasts that long on any machine.
    const server = await mock({ hold: true });
    const h = home(server, 30);
    // Colour could be on (no NO_COLOR, a colour TERM): only the missing terminal turns it off.
    const { NO_COLOR: _noColor, ...base } = h.env;
    const env: NodeJS.ProcessEnv = { ...base, FLASHCARDS_PROGRESS_INTERVAL: '200ms', TERM: 'xterm-256color' };
    const args = ['process', h.input, '--format', 'jsonl', '-o', h.out, '--concurrency', '2'];
    const run = startCli(args, { env });
    await liveStderr(run).shows(/^progress: .*\n(?:.*\n)*progress: /m);
    server.set({ hold: false });
    const r = await run.done;
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
    const first = h.args(
      '--model',
      'first-model',
      '--concurrency',
      '1',
      '--max-attempts',
      '1',
      '--retry-window',
      '0',
      '--json',
    );
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
    const args = h.args('--concurrency', '1', '--max-attempts', '1', '--retry-window', '0', '--json');
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
      // Items are numbered as in the input: the first row is item 1.
      assert.equal(f.term, h.words[f.item - 1]);
    }
    for (const p of ['p50', 'p90', 'p99', 'max'] as const) assert.equal(typeof shown.timingMs[p], 'number');
    const human = await runCli(['batches', 'show', s1.batchId], { env: h.env });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /analyze/);
    assert.match(human.stdout, /request time: p50/);
    assert.match(human.stdout, /failed item \d+ ".+": server: /);
    const first = shown.failures[0];
    assert.ok(first);
    const term = first.term.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(human.stdout, new RegExp(`^failed item ${first.item} "${term}": server: `, 'm'));

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
    const args = h.args(
      '--concurrency',
      '1',
      '--max-attempts',
      '1',
      '--retry-window',
      '0',
      '--no-cache',
      '--json',
    );
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
