import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { type CheckResult, checkNode, doctor, findModel, modelIds } from '../src/commands/doctor.ts';
import { FakeClock } from '../src/core/clock.ts';
import { openDatabase } from '../src/db/open.ts';

const SECRET = 'sk-or-v1-doctor-secret-9876';

function setup(env: NodeJS.ProcessEnv = {}) {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')));
  const io = memoryIo();
  const ctx: CommandContext = {
    home: path.join(dir, 'home'),
    cwd: dir,
    env,
    io,
    clock: new FakeClock(),
    verbose: false,
  };
  return { dir, ctx, io };
}

interface Call {
  url: string;
  authorization: string | null;
}

/** The models list of an OpenAI-compatible provider, as `GET /models` answers it. */
const modelList = (...ids: string[]): string =>
  JSON.stringify({ object: 'list', data: ids.map((id) => ({ id })) });

/**
 * A fetch that answers every request with `status` and records what was asked; a 200 lists the
 * default (openrouter) preset's model among others unless given another body.
 */
function fakeFetch(
  answer: number | Error,
  body = modelList('anthropic/claude-3.5-haiku', 'openai/gpt-4o-mini', 'openai/gpt-4o'),
): typeof fetch & { calls: Call[] } {
  const calls: Call[] = [];
  const fn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    calls.push({ url: String(input), authorization: new Headers(init?.headers).get('authorization') });
    if (answer instanceof Error) throw answer;
    return new Response(body, { status: answer });
  };
  return Object.assign(fn, { calls }) as typeof fetch & { calls: Call[] };
}

async function runJson(
  ctx: CommandContext,
  io: ReturnType<typeof memoryIo>,
  opts: Parameters<typeof doctor>[1],
): Promise<{ code: number; ok: boolean; checks: Record<string, CheckResult> }> {
  const code = await doctor(ctx, { json: true, nodeVersion: '24.1.0', ...opts });
  assert.equal(io.stdout.length, 1);
  const out = JSON.parse(io.stdout[0] ?? '') as { ok: boolean; checks: CheckResult[] };
  return { code, ok: out.ok, checks: Object.fromEntries(out.checks.map((c) => [c.name, c])) };
}

describe('doctor', () => {
  test('everything passes with a key and a provider that answers 200', async () => {
    const { ctx, io } = setup({ OPENROUTER_API_KEY: SECRET });
    const fetch = fakeFetch(200);
    const { code, ok, checks } = await runJson(ctx, io, { fetch });
    assert.equal(code, 0);
    assert.equal(ok, true);
    assert.deepEqual(Object.keys(checks), [
      'Node.js',
      'data directory',
      'state.db',
      'cache.db',
      'config',
      'API key',
      'provider',
    ]);
    assert.ok(Object.values(checks).every((c) => c.status === 'pass'));
    assert.deepEqual(fetch.calls, [
      { url: 'https://openrouter.ai/api/v1/models', authorization: `Bearer ${SECRET}` },
    ]);
    assert.deepEqual(checks['API key'], {
      name: 'API key',
      status: 'pass',
      detail: 'set (from env OPENROUTER_API_KEY)',
    });
    assert.equal(checks['data directory']?.detail, `writable: ${ctx.home}`);
    assert.deepEqual(fs.readdirSync(ctx.home), []);
    assert.equal(io.stdout.join('').includes(SECRET), false);
  });

  test('a 401 fails the provider check as "key rejected" without printing the key', async () => {
    const { ctx, io } = setup({ OPENROUTER_API_KEY: SECRET });
    const code = await doctor(ctx, { fetch: fakeFetch(401), nodeVersion: '24.1.0' });
    assert.equal(code, 1);
    const text = io.stdout.join('');
    assert.deepEqual(io.stderr, []);
    assert.match(text, /key rejected: GET https:\/\/openrouter\.ai\/api\/v1\/models answered HTTP 401/);
    assert.match(text, /check the key \(env OPENROUTER_API_KEY\) is valid for openrouter/);
    assert.match(text, /1 of 7 checks did not pass\n$/);
    assert.equal(text.includes(SECRET), false);
  });

  test('a base URL with a query string: /models goes before the query, a key in it is never shown', async () => {
    const base = 'https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21';
    const { ctx, io } = setup({
      FLASHCARDS_PROVIDER: 'custom',
      FLASHCARDS_BASE_URL: `${base}&api-key=QUERY-SECRET`,
      FLASHCARDS_MODEL: 'gpt-4o-mini',
      FLASHCARDS_API_KEY: SECRET,
    });
    const fetch = fakeFetch(401);
    const { checks } = await runJson(ctx, io, { fetch });
    assert.deepEqual(
      fetch.calls.map((c) => c.url),
      ['https://x.openai.azure.com/openai/deployments/d/models?api-version=2024-10-21&api-key=QUERY-SECRET'],
    );
    assert.equal(
      checks['provider']?.detail,
      'key rejected: GET https://x.openai.azure.com/openai/deployments/d/models?api-version=2024-10-21&api-key=*** answered HTTP 401',
    );
    const printed = io.stdout.join('') + io.stderr.join('');
    assert.equal(printed.includes('QUERY-SECRET'), false);
    assert.equal(printed.includes(SECRET), false);
  });

  test('a network error fails with the cause and how to start a local server', async () => {
    const { ctx, io } = setup({ FLASHCARDS_PROVIDER: 'ollama' });
    const refused = new TypeError('fetch failed', {
      cause: new Error('connect ECONNREFUSED 127.0.0.1:11434'),
    });
    const fetch = fakeFetch(refused);
    const { code, checks } = await runJson(ctx, io, { fetch });
    assert.equal(code, 1);
    assert.deepEqual(checks['provider'], {
      name: 'provider',
      status: 'fail',
      detail: 'cannot reach GET http://127.0.0.1:11434/v1/models: connect ECONNREFUSED 127.0.0.1:11434',
      fix: 'start the server (ollama serve) or fix baseUrl',
    });
    assert.deepEqual(checks['API key'], {
      name: 'API key',
      status: 'pass',
      detail: 'not needed for ollama at http://127.0.0.1:11434/v1',
    });
    assert.equal(fetch.calls[0]?.authorization, null);
  });

  test('a missing key fails usefully, names the variables, and skips the network probe', async () => {
    const { ctx, io } = setup({});
    const fetch = fakeFetch(200);
    const { code, checks } = await runJson(ctx, io, { fetch, flags: { provider: 'groq' } });
    assert.equal(code, 1);
    assert.deepEqual(checks['API key'], {
      name: 'API key',
      status: 'fail',
      detail:
        'no API key for provider groq; looked in FLASHCARDS_API_KEY, GROQ_API_KEY, OPENROUTER_API_KEY, OPENAI_API_KEY',
      fix: 'export GROQ_API_KEY=<your key> (get one at https://console.groq.com/keys)',
    });
    assert.deepEqual(checks['provider'], {
      name: 'provider',
      status: 'skip',
      detail: 'skipped: needs an API key first',
    });
    assert.deepEqual(fetch.calls, []);
  });

  test('the mock provider passes without touching the network', async () => {
    const { ctx, io } = setup({ FLASHCARDS_PROVIDER: 'mock' });
    const fetch = fakeFetch(new Error('network must not be used'));
    const { code, checks } = await runJson(ctx, io, { fetch });
    assert.equal(code, 0);
    assert.equal(checks['provider']?.detail, 'mock provider (offline, no network needed)');
    assert.deepEqual(fetch.calls, []);
  });

  test('an apiKey in the config file is a warning, not a failure', async () => {
    const { dir, ctx, io } = setup({});
    fs.writeFileSync(path.join(dir, '.flashcardrc'), `apiKey: ${SECRET}\n`);
    const { code, checks } = await runJson(ctx, io, { fetch: fakeFetch(200) });
    assert.equal(code, 0);
    assert.equal(checks['API key']?.status, 'warn');
    assert.equal(
      checks['API key']?.fix,
      'keep keys out of files: export OPENROUTER_API_KEY=... and delete apiKey from the file',
    );
    assert.equal(io.stdout.join('').includes(SECRET), false);
  });

  test('an apiKey left in the config file is still a warning when an env variable overrides it', async () => {
    const { dir, ctx, io } = setup({ OPENROUTER_API_KEY: 'sk-from-env-0123456789' });
    fs.writeFileSync(path.join(dir, '.flashcardrc'), `apiKey: ${SECRET}\n`);
    const { checks } = await runJson(ctx, io, { fetch: fakeFetch(200) });
    assert.equal(checks['API key']?.status, 'warn');
    assert.match(checks['API key']?.detail ?? '', /\.flashcardrc \(env OPENROUTER_API_KEY overrides it\)$/);
    assert.equal(checks['config']?.status, 'pass');
    assert.equal(io.stdout.join('').includes(SECRET), false);
  });

  test('an invalid config fails with its message and skips the checks that need it', async () => {
    const { dir, ctx, io } = setup({ OPENROUTER_API_KEY: SECRET });
    fs.writeFileSync(path.join(dir, '.flashcardrc'), 'concurency: 3\n');
    const { code, checks } = await runJson(ctx, io, { fetch: fakeFetch(200) });
    assert.equal(code, 1);
    assert.equal(checks['config']?.status, 'fail');
    assert.equal(
      checks['config']?.detail,
      '.flashcardrc: unknown key "concurency" (did you mean "concurrency"?)',
    );
    assert.equal(checks['provider']?.status, 'skip');
  });

  test('databases: a healthy one passes quick_check, a corrupt one fails with "move it aside"', async () => {
    const { ctx, io } = setup({ FLASHCARDS_PROVIDER: 'mock' });
    fs.mkdirSync(ctx.home, { recursive: true });
    const state = path.join(ctx.home, 'state.db');
    const db = openDatabase(state);
    db.exec('CREATE TABLE t (x INTEGER)');
    db.close();
    const cache = path.join(ctx.home, 'cache.db');
    fs.writeFileSync(
      cache,
      'this is not a database, just some text that is long enough to have a header'.repeat(20),
    );
    const { code, checks } = await runJson(ctx, io, {});
    assert.equal(code, 1);
    assert.deepEqual(checks['state.db'], {
      name: 'state.db',
      status: 'pass',
      detail: `integrity ok: ${state}`,
    });
    assert.equal(checks['cache.db']?.status, 'fail');
    assert.equal(
      checks['cache.db']?.fix,
      `move it aside (mv ${cache} ${cache}.bad) and run again; a fresh one is created`,
    );
  });

  test('Node.js older than 22.14 fails (the SQLite driver crashes on 22.12 and 22.13)', () => {
    assert.deepEqual(checkNode('22.13.1'), {
      name: 'Node.js',
      status: 'fail',
      detail: '22.13.1 (needs >= 22.14)',
      fix: 'install Node.js 22.14 or newer',
    });
    assert.equal(checkNode('22.11.0').status, 'fail');
    assert.equal(checkNode('22.14.0').status, 'pass');
    assert.equal(checkNode('23.0.1').status, 'pass');
  });

  test('an unwritable data directory fails with the fix', async () => {
    const { dir, ctx, io } = setup({ FLASHCARDS_PROVIDER: 'mock' });
    const blocker = path.join(dir, 'file');
    fs.writeFileSync(blocker, 'x');
    ctx.home = path.join(blocker, 'home');
    const { code, checks } = await runJson(ctx, io, {});
    assert.equal(code, 1);
    assert.equal(checks['data directory']?.status, 'fail');
    assert.equal(checks['data directory']?.fix, 'set FLASHCARDS_HOME or --home to a writable directory');
  });

  test('a model the provider does not list fails, with the close match it does list (exit 1)', async () => {
    const { ctx, io } = setup({ OPENAI_API_KEY: SECRET });
    const fetch = fakeFetch(200, modelList('gpt-4o', 'gpt-4o-mini', 'o3-mini'));
    const flags = { provider: 'openai', model: 'gpt-4o-mnii' };
    const { code, ok, checks } = await runJson(ctx, io, { fetch, flags });
    assert.equal(code, 1);
    assert.equal(ok, false);
    assert.deepEqual(checks['provider'], {
      name: 'provider',
      status: 'fail',
      detail:
        'GET https://api.openai.com/v1/models: HTTP 200, but the model gpt-4o-mnii is not among the 3 it lists (did you mean gpt-4o-mini?)',
      fix: 'use --model gpt-4o-mini (the model comes from --model)',
    });
    assert.equal(fetch.calls.length, 1, 'the same GET /models answers both questions');
  });

  test('the table and its verdict go to stdout: a listed model passes, the summary counts it', async () => {
    const { ctx, io } = setup({ OPENAI_API_KEY: SECRET });
    const fetch = fakeFetch(200, modelList('gpt-4o-mini'));
    assert.equal(await doctor(ctx, { fetch, nodeVersion: '24.1.0', flags: { provider: 'openai' } }), 0);
    const text = io.stdout.join('');
    assert.deepEqual(io.stderr, []);
    assert.match(
      text,
      /│ provider +│ pass +│ GET https:\/\/api\.openai\.com\/v1\/models: HTTP 200, lists the model gpt-4o-mini +│/,
    );
    assert.match(text, /^all 7 checks passed$/m);
  });

  test('a model nothing is close to: the fix names some of the listed models', async () => {
    const { ctx, io } = setup({ FLASHCARDS_API_KEY: SECRET });
    const ids = Array.from({ length: 10 }, (_, i) => `model-${i}`);
    const { checks } = await runJson(ctx, io, {
      fetch: fakeFetch(200, modelList(...ids)),
      flags: { provider: 'custom', baseUrl: 'https://llm.example.com/v1', model: 'unrelated' },
    });
    assert.equal(checks['provider']?.status, 'fail');
    assert.equal(
      checks['provider']?.fix,
      'use a model it lists: model-0, model-1, model-2, model-3, model-4, model-5, model-6, model-7, ... (the model comes from --model)',
    );
  });

  test('a provider without a models list (404) is a warning, not a failure: exit 0', async () => {
    const { ctx, io } = setup({ OPENROUTER_API_KEY: SECRET });
    const { code, ok, checks } = await runJson(ctx, io, { fetch: fakeFetch(404, 'Not Found') });
    assert.equal(code, 0);
    assert.equal(ok, true);
    assert.deepEqual(checks['provider'], {
      name: 'provider',
      status: 'warn',
      detail:
        'reachable, but GET https://openrouter.ai/api/v1/models answered HTTP 404: no models list, so the model openai/gpt-4o-mini was not checked',
      fix: 'if runs fail with HTTP 404 too, check baseUrl: most OpenAI-compatible servers expect it to end in /v1',
    });
  });

  test('an answer that is not a models list, or an empty one, leaves the model unchecked: a warning', async () => {
    for (const body of ['<html>hello</html>', modelList()]) {
      const { ctx, io } = setup({ OPENROUTER_API_KEY: SECRET });
      const { code, checks } = await runJson(ctx, io, { fetch: fakeFetch(200, body) });
      assert.equal(code, 0, body);
      assert.equal(checks['provider']?.status, 'warn', body);
      assert.match(checks['provider']?.detail ?? '', /the model openai\/gpt-4o-mini was not checked$/);
    }
  });

  test('llama-server answers with its one model whatever the name: a mismatch is a warning', async () => {
    const { ctx, io } = setup({ FLASHCARDS_PROVIDER: 'llamacpp' });
    const { code, checks } = await runJson(ctx, io, {
      fetch: fakeFetch(200, modelList('/models/qwen2.5-7b-instruct-q4_k_m.gguf')),
    });
    assert.equal(code, 0);
    assert.equal(checks['provider']?.status, 'warn');
  });
});

describe('doctor: which listed model a name means', () => {
  test('modelIds reads {data: [{id}]} and a bare array; anything else is not a list', () => {
    assert.deepEqual(modelIds('{"object":"list","data":[{"id":"a"},{"id":"b"},{"name":"c"}]}'), ['a', 'b']);
    assert.deepEqual(modelIds('[{"id":"x"}]'), ['x']);
    assert.equal(modelIds('{"models":[]}'), undefined);
    assert.equal(modelIds('not json'), undefined);
    assert.equal(modelIds(undefined), undefined);
  });

  test("findModel: exact, Ollama's :latest, OpenRouter variants, then the closest name", () => {
    assert.deepEqual(findModel('gpt-4o-mini', ['gpt-4o', 'gpt-4o-mini']), {
      listed: true,
      as: 'gpt-4o-mini',
    });
    assert.deepEqual(findModel('llama3.1', ['llama3.1:latest', 'qwen2.5:7b']), {
      listed: true,
      as: 'llama3.1:latest',
    });
    assert.deepEqual(
      findModel('meta-llama/llama-3.1-8b-instruct:nitro', ['meta-llama/llama-3.1-8b-instruct']),
      {
        listed: true,
        as: 'meta-llama/llama-3.1-8b-instruct',
      },
    );
    assert.deepEqual(findModel('llama3.1:70b', ['llama3.1:latest']), {
      listed: false,
      suggestion: 'llama3.1:latest',
    });
    assert.deepEqual(findModel('gpt-4o-mini', ['openai/gpt-4o-mini', 'openai/gpt-4o']), {
      listed: false,
      suggestion: 'openai/gpt-4o-mini',
    });
    assert.deepEqual(findModel('gpt-4o-mnii', ['gpt-4o', 'gpt-4o-mini']), {
      listed: false,
      suggestion: 'gpt-4o-mini',
    });
    assert.deepEqual(findModel('claude', ['gpt-4o', 'gpt-4o-mini']), {
      listed: false,
      suggestion: undefined,
    });
  });
});
