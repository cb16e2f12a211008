import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  configInit,
  configPath,
  configShow,
  configValidate,
  type InitPrompts,
} from '../src/commands/config.ts';
import { type CommandContext, memoryIo } from '../src/commands/context.ts';
import { loadSettings } from '../src/config/load.ts';
import { FakeClock } from '../src/core/clock.ts';
import { type FlashcardsError, isFlashcardsError } from '../src/core/errors.ts';

function tempDir(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')));
}

function context(cwd: string, env: NodeJS.ProcessEnv = {}, isTTY = false) {
  const io = memoryIo();
  io.isTTY = isTTY;
  const ctx: CommandContext = {
    home: path.join(cwd, '.home'),
    cwd,
    env,
    io,
    clock: new FakeClock(),
    verbose: false,
  };
  return { ctx, io };
}

async function rejection(run: () => Promise<unknown>): Promise<FlashcardsError> {
  try {
    await run();
  } catch (e) {
    assert.ok(isFlashcardsError(e), `expected a FlashcardsError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected the command to throw');
}

/** Answers prompts from a script, recording each question. */
function scripted(answers: unknown[]): InitPrompts & { asked: string[] } {
  const asked: string[] = [];
  const next = <T>(message: string): Promise<T> => {
    asked.push(message);
    if (answers.length === 0) throw new Error(`no scripted answer for "${message}"`);
    return Promise.resolve(answers.shift() as T);
  };
  return {
    asked,
    select: (q) => next(q.message),
    input: (q) => next(q.message),
    number: (q) => next(q.message),
    confirm: (q) => next(q.message),
  };
}

describe('config init', () => {
  test('--yes writes a .flashcardrc that loadSettings accepts, without the API key from the env', async () => {
    const dir = tempDir();
    const env = { OPENROUTER_API_KEY: 'sk-or-v1-supersecret-abcd' };
    const { ctx, io } = context(dir, env);
    assert.equal(await configInit(ctx, { yes: true }), 0);

    const file = path.join(dir, '.flashcardrc');
    const text = fs.readFileSync(file, 'utf8');
    assert.deepEqual(JSON.parse(text), {
      provider: 'openrouter',
      model: 'openai/gpt-4o-mini',
      sourceLanguage: 'Korean',
      targetLanguage: 'English',
      deck: 'Korean Vocabulary',
    });
    assert.doesNotMatch(text, /apiKey|supersecret/);
    const loaded = await loadSettings({ cwd: dir, env });
    assert.equal(loaded.configFile, file);
    assert.equal(loaded.settings.apiKey, 'sk-or-v1-supersecret-abcd');
    assert.deepEqual(io.stdout, []);
    assert.deepEqual(io.stderr, [
      'wrote .flashcardrc (provider openrouter, model openai/gpt-4o-mini)\n',
      'next: export OPENROUTER_API_KEY=... (get one at https://openrouter.ai/keys)\n',
      '      (OPENROUTER_API_KEY is already set in this shell; the key belongs in the environment, not in .flashcardrc)\n',
      'then: flashcards doctor\n',
    ]);
  });

  test('--yes takes provider, model, languages, deck and limits from flags', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir);
    const code = await configInit(ctx, {
      yes: true,
      provider: 'groq',
      sourceLanguage: 'Japanese',
      targetLanguage: 'German',
      rpm: '30',
      tpm: 6000,
      file: 'conf/fc.json',
    });
    assert.equal(code, 0);
    const file = path.join(dir, 'conf', 'fc.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), {
      provider: 'groq',
      model: 'llama-3.3-70b-versatile',
      sourceLanguage: 'Japanese',
      targetLanguage: 'German',
      deck: 'Japanese Vocabulary',
      limiter: { rpm: 30, tpm: 6000 },
    });
    const loaded = await loadSettings({ cwd: dir, env: {}, configFile: file });
    assert.equal(loaded.settings.limiter.rpm, 30);
    assert.ok(
      io.stderr.includes('next: export GROQ_API_KEY=... (get one at https://console.groq.com/keys)\n'),
    );
  });

  test('a local preset needs no key, so no export line is printed', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir);
    await configInit(ctx, { yes: true, provider: 'ollama' });
    assert.deepEqual(io.stderr, [
      'wrote .flashcardrc (provider ollama, model llama3.1)\n',
      'then: flashcards doctor\n',
    ]);
  });

  test('refuses to overwrite an existing file without --force (exit 2), overwrites with it', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, '.flashcardrc'), 'deck: Mine\n');
    const { ctx } = context(dir);
    const err = await rejection(() => configInit(ctx, { yes: true }));
    assert.equal(err.message, '.flashcardrc already exists');
    assert.equal(err.exitCode, 2);
    assert.equal(fs.readFileSync(path.join(dir, '.flashcardrc'), 'utf8'), 'deck: Mine\n');
    assert.equal(await configInit(ctx, { yes: true, force: true, deck: 'New' }), 0);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, '.flashcardrc'), 'utf8')).deck, 'New');
  });

  test('without a terminal and without --yes it refuses with a hint', async () => {
    const dir = tempDir();
    const { ctx } = context(dir);
    const err = await rejection(() => configInit(ctx, {}));
    assert.equal(err.message, 'config init asks questions, but stderr is not a terminal');
    assert.match(err.hint ?? '', /pass --yes/);
    assert.equal(err.exitCode, 2);
    assert.equal(fs.existsSync(path.join(dir, '.flashcardrc')), false);
  });

  test('bad flag values and an incomplete custom provider are refused before writing', async () => {
    const dir = tempDir();
    const { ctx } = context(dir);
    assert.equal(
      (await rejection(() => configInit(ctx, { yes: true, rpm: 'abc' }))).message,
      '--rpm must be a number > 0, got "abc"',
    );
    assert.equal(
      (await rejection(() => configInit(ctx, { yes: true, provider: 'custom' }))).message,
      'provider custom needs a base URL and a model',
    );
    assert.equal(fs.existsSync(path.join(dir, '.flashcardrc')), false);
  });

  test('on a terminal the wizard asks, shows the file and writes it after confirmation', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir, {}, true);
    const prompts = scripted([
      'ollama',
      'http://gpu-box:11434/v1',
      'qwen2.5',
      'Korean',
      'Spanish',
      'TOPIK I',
      true,
    ]);
    assert.equal(await configInit(ctx, { prompts }), 0);
    assert.deepEqual(prompts.asked, [
      'Which provider?',
      'Base URL of the OpenAI-compatible API',
      'Model',
      'Language of your word lists',
      'Language the cards should explain them in',
      'Anki deck name',
      'Write .flashcardrc?',
    ]);
    const written = JSON.parse(fs.readFileSync(path.join(dir, '.flashcardrc'), 'utf8'));
    assert.deepEqual(written, {
      provider: 'ollama',
      baseUrl: 'http://gpu-box:11434/v1',
      model: 'qwen2.5',
      sourceLanguage: 'Korean',
      targetLanguage: 'Spanish',
      deck: 'TOPIK I',
    });
    assert.equal(io.stderr[0], `\n${JSON.stringify(written, null, 2)}\n`);
  });

  test('the wizard asks for limits on a hosted provider and writes nothing when declined', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir, {}, true);
    const prompts = scripted([
      'openai',
      'gpt-4o-mini',
      'Korean',
      'English',
      'Korean Vocabulary',
      500,
      undefined,
      false,
    ]);
    assert.equal(await configInit(ctx, { prompts }), 0);
    assert.deepEqual(prompts.asked.slice(5, 7), [
      "Requests per minute your plan allows (empty = learn it from the provider's rate-limit headers and 429s)",
      "Tokens per minute your plan allows (empty = learn it from the provider's rate-limit headers and 429s)",
    ]);
    assert.equal(fs.existsSync(path.join(dir, '.flashcardrc')), false);
    assert.equal(io.stderr.at(-1), 'nothing written\n');
  });
});

describe('config show', () => {
  test('--json names the source of each value and redacts the key', async () => {
    const dir = tempDir();
    const rc = path.join(dir, '.flashcardrc');
    fs.writeFileSync(rc, 'deck: My Deck\nlimiter:\n  rpm: 60\n');
    const secret = 'sk-or-v1-0123456789secret-abcd';
    const { ctx, io } = context(dir, { OPENROUTER_API_KEY: secret, FLASHCARDS_FORMAT: 'csv' });
    assert.equal(await configShow(ctx, { json: true, flags: { model: 'gpt-4o' } }), 0);

    assert.equal(io.stdout.length, 1);
    assert.equal(io.stdout.join('').includes('0123456789secret'), false);
    assert.deepEqual(io.stderr, []);
    const out = JSON.parse(io.stdout[0] ?? '');
    assert.equal(out.configFile, rc);
    assert.equal(out.dataDir, ctx.home);
    assert.equal(out.settings.apiKey, 'sk-…abcd');
    assert.equal(out.settings.apiKeySource, 'env OPENROUTER_API_KEY');
    assert.equal(out.settings.deck, 'My Deck');
    assert.deepEqual(out.sources.deck, { kind: 'file', detail: rc });
    assert.deepEqual(out.sources['limiter.rpm'], { kind: 'file', detail: rc });
    assert.deepEqual(out.sources.format, { kind: 'env', detail: 'FLASHCARDS_FORMAT' });
    assert.deepEqual(out.sources.model, { kind: 'flag', detail: '--model' });
    assert.deepEqual(out.sources.baseUrl, { kind: 'preset', detail: 'openrouter' });
    assert.deepEqual(out.sources.concurrency, { kind: 'default', detail: 'default' });
    assert.deepEqual(out.sources.apiKey, { kind: 'env', detail: 'OPENROUTER_API_KEY' });
  });

  test('the table shows every key with a readable value and source, the key redacted', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir, {
      FLASHCARDS_API_KEY: 'abcdefghijklmnop-wxyz',
      FLASHCARDS_CACHE_TTL: '7d',
    });
    assert.equal(await configShow(ctx, {}), 0);
    const text = io.stdout.join('');
    assert.deepEqual(io.stderr, []);
    assert.equal(io.stdout[0], `no config file found; searched from ${dir} up (using defaults)\n`);
    assert.match(text, /│ apiKey +│ abc…wxyz +│ env FLASHCARDS_API_KEY +│/);
    assert.match(text, /│ cache\.ttl +│ 7d +│ env FLASHCARDS_CACHE_TTL +│/);
    assert.match(text, /│ timeout +│ 1m +│ default +│/);
    assert.match(text, /│ limiter\.rpm +│ \(not set\) +│ default +│/);
    assert.equal(text.includes('abcdefghijklmnop'), false);
  });

  test('a key in the base URL’s query is hidden in the table and in --json, the rest of the URL shown', async () => {
    const dir = tempDir();
    const base = 'https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21';
    const { ctx, io } = context(dir, { FLASHCARDS_BASE_URL: `${base}&api-key=QUERY-SECRET-1234` });
    await configShow(ctx, { json: true });
    await configShow(ctx, {});
    const text = io.stderr.join('') + io.stdout.join('');
    assert.equal(text.includes('QUERY-SECRET'), false);
    assert.match(
      io.stdout.slice(1).join(''),
      /│ baseUrl +│ https:\/\/x\.openai\.azure\.com\/.*api-version=2024-10-21&api-key=\*\*\* +│/,
    );
    assert.equal(JSON.parse(io.stdout[0] ?? '').settings.baseUrl, `${base}&api-key=***`);
  });

  test('without any key the table says (not set)', async () => {
    const { ctx, io } = context(tempDir());
    await configShow(ctx, {});
    assert.match(io.stdout.join(''), /│ apiKey +│ \(not set\) +│ default +│/);
  });
});

describe('config validate and config path', () => {
  test('validate prints ok for a good file and throws the first problem for a bad one', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'good.yaml'), 'concurrency: 2\n');
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'concurrency: 0\n');
    const { ctx, io } = context(dir);
    assert.equal(await configValidate(ctx, { file: 'good.yaml' }), 0);
    assert.deepEqual(io.stderr, ['ok: good.yaml\n']);
    const err = await rejection(() => configValidate(ctx, { file: 'bad.yaml' }));
    assert.equal(err.message, 'bad.yaml: concurrency must be an integer >= 1, got 0');
    assert.equal(err.exitCode, 2);
  });

  test('validate finds the file from cwd up, and says so when there is none', async () => {
    const dir = tempDir();
    const { ctx } = context(dir);
    const err = await rejection(() => configValidate(ctx, {}));
    assert.equal(err.message, `no config file found; searched from ${dir} up`);
    fs.writeFileSync(path.join(dir, '.flashcardrc'), '{"deck": "D"}');
    const { ctx: again, io } = context(dir);
    assert.equal(await configValidate(again, {}), 0);
    assert.deepEqual(io.stderr, ['ok: .flashcardrc\n']);
  });

  test('path prints the file in effect and the data directory on stdout', async () => {
    const dir = tempDir();
    const none = context(dir);
    await configPath(none.ctx, {});
    assert.deepEqual(none.io.stderr, []);
    assert.deepEqual(none.io.stdout, [
      `no config file found; searched from ${dir} up\n`,
      `data directory: ${path.join(dir, '.home')}\n`,
    ]);
    fs.writeFileSync(path.join(dir, '.flashcardrc.yaml'), 'deck: D\n');
    const found = context(dir);
    await configPath(found.ctx, { json: true });
    assert.deepEqual(JSON.parse(found.io.stdout.join('')), {
      configFile: path.join(dir, '.flashcardrc.yaml'),
      dataDir: path.join(dir, '.home'),
      searchedFrom: dir,
    });
  });

  test('path --json without a config file says null, so `jq -r .configFile` works either way', async () => {
    const dir = tempDir();
    const { ctx, io } = context(dir);
    assert.equal(await configPath(ctx, { json: true }), 0);
    assert.deepEqual(io.stderr, []);
    assert.deepEqual(JSON.parse(io.stdout.join('')), {
      configFile: null,
      dataDir: path.join(dir, '.home'),
      searchedFrom: dir,
    });
  });
});

describe('config show piped or in a terminal', () => {
  const pricesRow = (text: string): string[] =>
    text.split('\n').filter((l) => /gpt-4o-mini 0\.15\/0\.6/.test(l));

  test('piped, every key stays on one line (the price list too), so grep finds whole rows', async () => {
    const { ctx, io } = context(tempDir());
    await configShow(ctx, {});
    const rows = pricesRow(io.stdout.join(''));
    assert.equal(rows.length, 1);
    assert.match(rows[0] ?? '', /^│ prices +│ .*gpt-4o-mini 0\.15\/0\.6; .*│ default +│$/);
  });

  test('in a terminal the price list takes a line per model', async () => {
    const { ctx, io } = context(tempDir());
    io.outColumns = 120;
    await configShow(ctx, {});
    assert.ok(pricesRow(io.stdout.join('')).length >= 2);
  });
});
