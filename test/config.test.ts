import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadSettings, parseSetting } from '../src/config/load.ts';
import { describeKeys, type Settings, settingValue } from '../src/config/schema.ts';
import { ENV_VARS, flagName, SETTING_ENTRIES, settingSpec } from '../src/config/settings-table.ts';
import { isFlashcardsError } from '../src/core/errors.ts';
import { didYouMean } from '../src/core/suggest.ts';

const repoRoot = path.resolve(import.meta.dirname, '..');

function tempDir(): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'fc-')));
}

function write(dir: string, name: string, content: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** Runs loadSettings and returns the config error it throws: message and exit code. */
async function configError(
  input: Parameters<typeof loadSettings>[0],
): Promise<{ message: string; exitCode: number }> {
  try {
    await loadSettings(input);
  } catch (e) {
    assert.ok(isFlashcardsError(e), `expected a FlashcardsError, got ${String(e)}`);
    assert.equal(e.kind, 'config');
    return { message: e.message, exitCode: e.exitCode };
  }
  assert.fail('loadSettings should have thrown');
}

const defaults: Settings = {
  provider: 'openrouter',
  baseUrl: 'https://openrouter.ai/api/v1',
  model: 'openai/gpt-4o-mini',
  apiKey: undefined,
  apiKeySource: undefined,
  sourceLanguage: 'Korean',
  targetLanguage: 'English',
  pipeline: 'vocabulary',
  deck: 'Korean Vocabulary',
  noteType: 'Basic',
  tags: ['flashcards'],
  fields: undefined,
  format: 'anki',
  ankiConnectUrl: 'http://127.0.0.1:8765',
  concurrency: undefined,
  maxConcurrency: 256,
  timeoutMs: 60_000,
  maxTokens: 1500,
  temperature: 0.3,
  maxDurationMs: undefined,
  limiter: { rpm: undefined, tpm: undefined, burstSeconds: 1, shards: 'auto' },
  cache: {
    enabled: true,
    ttlMs: 30 * 86_400_000,
    jitter: 0.1,
    compressThresholdBytes: 1024,
    staleIfError: false,
  },
  retry: { maxAttempts: 6, baseDelayMs: 1000, maxDelayMs: 30_000, windowMs: 60_000 },
  breaker: {
    samplingWindowMs: 30_000,
    failureRatio: 0.5,
    minThroughput: 10,
    breakDurationMs: 30_000,
    maxBreakDurationMs: 300_000,
    maxWaitMs: 180_000,
  },
  progressIntervalMs: 10_000,
  logs: { keepMs: 14 * 86_400_000, keepFiles: 500 },
  batchApi: { available: false, discount: 0.5, maxRequests: 50_000, maxBytes: 200 * 1024 * 1024 },
  store: undefined,
  metricsFile: undefined,
  prices: {
    'gpt-4o-mini': { input: 0.15, output: 0.6 },
    'openai/gpt-4o-mini': { input: 0.15, output: 0.6 },
    'gpt-4o': { input: 2.5, output: 10 },
    'gpt-4.1-mini': { input: 0.4, output: 1.6 },
    'llama-3.3-70b-versatile': { input: 0.59, output: 0.79 },
    mock: { input: 0, output: 0 },
  },
};

describe('loadSettings: defaults and precedence', () => {
  test('with no file, env or flags every value is the documented default', async () => {
    const loaded = await loadSettings({ cwd: tempDir(), env: {} });
    assert.deepEqual(loaded.settings, defaults);
    assert.equal(loaded.configFile, undefined);
    assert.deepEqual(loaded.warnings, []);
    assert.deepEqual(loaded.sources['concurrency'], { kind: 'default', detail: 'default' });
    assert.deepEqual(loaded.sources['baseUrl'], { kind: 'preset', detail: 'openrouter' });
    assert.deepEqual(loaded.sources['apiKey'], { kind: 'default', detail: 'not set' });
  });

  test('a flag beats the environment, which beats the file, which beats the default', async () => {
    const dir = tempDir();
    const rc = write(
      dir,
      '.flashcardrc',
      'concurrency: 4\ntimeout: 20s\nlimiter:\n  rpm: 100\ndeck: From File\n',
    );
    const env = { FLASHCARDS_CONCURRENCY: '6', FLASHCARDS_RPM: '200' };
    const flags = { concurrency: '10', 'limiter.rpm': undefined };

    const all = await loadSettings({ cwd: dir, env, flags });
    assert.equal(all.configFile, rc);
    assert.equal(all.settings.concurrency, 10);
    assert.equal(all.settings.limiter.rpm, 200);
    assert.equal(all.settings.timeoutMs, 20_000);
    assert.equal(all.settings.deck, 'From File');
    assert.equal(all.settings.maxTokens, 1500);
    assert.deepEqual(all.sources['concurrency'], { kind: 'flag', detail: '--concurrency' });
    assert.deepEqual(all.sources['limiter.rpm'], { kind: 'env', detail: 'FLASHCARDS_RPM' });
    assert.deepEqual(all.sources['timeout'], { kind: 'file', detail: rc });
    assert.deepEqual(all.sources['maxTokens'], { kind: 'default', detail: 'default' });

    const noFlag = await loadSettings({ cwd: dir, env });
    assert.equal(noFlag.settings.concurrency, 6);
    const fileOnly = await loadSettings({ cwd: dir, env: {} });
    assert.equal(fileOnly.settings.concurrency, 4);
    assert.equal(fileOnly.settings.limiter.rpm, 100);
  });

  test('flags take raw strings, booleans and durations keyed by config path', async () => {
    const loaded = await loadSettings({
      cwd: tempDir(),
      env: {},
      flags: {
        'limiter.rpm': '600',
        timeout: '30s',
        'cache.enabled': false,
        baseUrl: 'http://localhost:9999/v1/',
        maxDuration: '25m',
        'limiter.shards': '4',
        'cache.staleIfError': true,
      },
    });
    assert.equal(loaded.settings.limiter.rpm, 600);
    assert.equal(loaded.settings.timeoutMs, 30_000);
    assert.equal(loaded.settings.cache.enabled, false);
    assert.equal(loaded.settings.baseUrl, 'http://localhost:9999/v1');
    assert.equal(loaded.settings.maxDurationMs, 1_500_000);
    assert.equal(loaded.settings.limiter.shards, 4);
    assert.equal(loaded.settings.cache.staleIfError, true);
    assert.deepEqual(loaded.sources['cache.enabled'], { kind: 'flag', detail: '--no-cache' });
    assert.deepEqual(loaded.sources['baseUrl'], { kind: 'flag', detail: '--base-url' });
  });

  test('durations: strings take units (a bare number means seconds), file numbers are milliseconds', async () => {
    const dir = tempDir();
    write(
      dir,
      '.flashcardrc.json',
      JSON.stringify({ timeout: 45000, cache: { ttl: '2h' }, retry: { maxDelay: '90s' } }),
    );
    const loaded = await loadSettings({ cwd: dir, env: { FLASHCARDS_MAX_DURATION: '30' } });
    assert.equal(loaded.settings.timeoutMs, 45_000);
    assert.equal(loaded.settings.cache.ttlMs, 7_200_000);
    assert.equal(loaded.settings.retry.maxDelayMs, 90_000);
    assert.equal(loaded.settings.maxDurationMs, 30_000);
  });

  test('env values are coerced from strings: numbers, booleans, comma lists, enums in any case', async () => {
    const loaded = await loadSettings({
      cwd: tempDir(),
      env: {
        FLASHCARDS_TEMPERATURE: '0.7',
        FLASHCARDS_CACHE: 'off',
        FLASHCARDS_TAGS: 'korean, topik ,level-2',
        FLASHCARDS_FORMAT: 'JSONL',
        FLASHCARDS_MODEL: '',
      },
    });
    assert.equal(loaded.settings.temperature, 0.7);
    assert.equal(loaded.settings.cache.enabled, false);
    assert.deepEqual(loaded.settings.tags, ['korean', 'topik', 'level-2']);
    assert.equal(loaded.settings.format, 'jsonl');
    // An empty variable counts as unset.
    assert.equal(loaded.settings.model, 'openai/gpt-4o-mini');
  });

  test('prices from the file are merged over the built-in ones', async () => {
    const dir = tempDir();
    write(
      dir,
      '.flashcardrc',
      'prices:\n  my-model: { input: 1, output: 2 }\n  gpt-4o: { input: 3, output: 12 }\n',
    );
    const { settings } = await loadSettings({ cwd: dir, env: {} });
    assert.deepEqual(settings.prices['my-model'], { input: 1, output: 2 });
    assert.deepEqual(settings.prices['gpt-4o'], { input: 3, output: 12 });
    assert.deepEqual(settings.prices['gpt-4o-mini'], { input: 0.15, output: 0.6 });
  });
});

describe('loadSettings: provider presets and the API key', () => {
  test('a provider preset sets the default baseUrl and model', async () => {
    const dir = tempDir();
    const rc = write(dir, '.flashcardrc', 'provider: groq\n');
    const { settings, sources } = await loadSettings({ cwd: dir, env: {} });
    assert.equal(settings.baseUrl, 'https://api.groq.com/openai/v1');
    assert.equal(settings.model, 'llama-3.3-70b-versatile');
    assert.deepEqual(sources['provider'], { kind: 'file', detail: rc });
    assert.deepEqual(sources['model'], { kind: 'preset', detail: 'groq' });
  });

  test('an explicit baseUrl or model at any level beats the preset of a higher-level provider', async () => {
    const dir = tempDir();
    write(dir, '.flashcardrc', 'provider: openai\nbaseUrl: https://proxy.example.com/v1\n');
    const { settings, sources } = await loadSettings({
      cwd: dir,
      env: { FLASHCARDS_PROVIDER: 'ollama' },
    });
    assert.equal(settings.provider, 'ollama');
    assert.equal(settings.baseUrl, 'https://proxy.example.com/v1');
    assert.equal(settings.model, 'llama3.1');
    assert.deepEqual(sources['model'], { kind: 'preset', detail: 'ollama' });
  });

  test('every preset has its documented base URL and model', async () => {
    const expected: Record<string, [string, string]> = {
      openrouter: ['https://openrouter.ai/api/v1', 'openai/gpt-4o-mini'],
      openai: ['https://api.openai.com/v1', 'gpt-4o-mini'],
      groq: ['https://api.groq.com/openai/v1', 'llama-3.3-70b-versatile'],
      ollama: ['http://127.0.0.1:11434/v1', 'llama3.1'],
      llamacpp: ['http://127.0.0.1:8080/v1', 'local'],
      mock: ['mock://local', 'mock'],
    };
    const dir = tempDir();
    for (const [provider, [baseUrl, model]] of Object.entries(expected)) {
      const { settings } = await loadSettings({ cwd: dir, env: {}, flags: { provider } });
      assert.deepEqual([settings.baseUrl, settings.model], [baseUrl, model], provider);
    }
  });

  test('provider custom needs an explicit baseUrl and model', async () => {
    const dir = tempDir();
    const err = await configError({ cwd: dir, env: {}, flags: { provider: 'custom', model: 'm' } });
    assert.equal(err.message, 'provider "custom" needs an explicit baseUrl');
    const ok = await loadSettings({
      cwd: dir,
      env: { FLASHCARDS_BASE_URL: 'http://gpu-box:8000/v1' },
      flags: { provider: 'custom', model: 'm' },
    });
    assert.equal(ok.settings.baseUrl, 'http://gpu-box:8000/v1');
  });

  test('the API key comes from FLASHCARDS_API_KEY, then the preset variable, then the generic ones', async () => {
    const dir = tempDir();
    const all = {
      FLASHCARDS_API_KEY: 'k-flash',
      GROQ_API_KEY: 'k-groq',
      OPENROUTER_API_KEY: 'k-or',
      OPENAI_API_KEY: 'k-oa',
    };
    const groq = { provider: 'groq' };
    const first = await loadSettings({ cwd: dir, env: all, flags: groq });
    assert.deepEqual(
      [first.settings.apiKey, first.settings.apiKeySource],
      ['k-flash', 'env FLASHCARDS_API_KEY'],
    );
    const { FLASHCARDS_API_KEY: _a, ...noFlash } = all;
    const second = await loadSettings({ cwd: dir, env: noFlash, flags: groq });
    assert.deepEqual([second.settings.apiKey, second.settings.apiKeySource], ['k-groq', 'env GROQ_API_KEY']);
    const { GROQ_API_KEY: _b, ...generic } = noFlash;
    const third = await loadSettings({ cwd: dir, env: generic, flags: groq });
    assert.deepEqual(
      [third.settings.apiKey, third.settings.apiKeySource],
      ['k-or', 'env OPENROUTER_API_KEY'],
    );
    const fourth = await loadSettings({ cwd: dir, env: { OPENAI_API_KEY: 'k-oa' } });
    assert.deepEqual(fourth.sources['apiKey'], { kind: 'env', detail: 'OPENAI_API_KEY' });
  });

  test('an apiKey in a file is accepted, loses to the environment, and draws a warning', async () => {
    const dir = tempDir();
    const rc = write(dir, '.flashcardrc', 'apiKey: sk-from-file-1234\n');
    const fromFile = await loadSettings({ cwd: dir, env: {} });
    assert.equal(fromFile.settings.apiKey, 'sk-from-file-1234');
    assert.equal(fromFile.settings.apiKeySource, `file ${rc}`);
    assert.deepEqual(fromFile.warnings, [
      `${rc} contains apiKey; keep keys out of files: export OPENROUTER_API_KEY=... instead`,
    ]);
    const fromEnv = await loadSettings({ cwd: dir, env: { OPENROUTER_API_KEY: 'sk-env' } });
    assert.equal(fromEnv.settings.apiKey, 'sk-env');
  });

  test('a FLASHCARDS_ variable with a typo draws a warning naming the right one', async () => {
    const { warnings } = await loadSettings({
      cwd: tempDir(),
      env: { FLASHCARDS_MODLE: 'x', FLASHCARDS_HOME: '/h' },
    });
    assert.deepEqual(warnings, [
      'ignoring unknown environment variable FLASHCARDS_MODLE (did you mean FLASHCARDS_MODEL?)',
    ]);
  });
});

describe('loadSettings: finding the file', () => {
  test('the file is searched from a subdirectory up', async () => {
    const dir = tempDir();
    const rc = write(dir, '.flashcardrc', 'deck: Parent Deck\n');
    const sub = path.join(dir, 'lists', 'week1');
    fs.mkdirSync(sub, { recursive: true });
    const loaded = await loadSettings({ cwd: sub, env: {} });
    assert.equal(loaded.configFile, rc);
    assert.equal(loaded.settings.deck, 'Parent Deck');
  });

  test('a "flashcards" key in package.json is a config source', async () => {
    const dir = tempDir();
    const pkg = write(
      dir,
      'package.json',
      JSON.stringify({ name: 'words', flashcards: { targetLanguage: 'German' } }),
    );
    const loaded = await loadSettings({ cwd: dir, env: {} });
    assert.equal(loaded.configFile, pkg);
    assert.equal(loaded.settings.targetLanguage, 'German');
  });

  test('a package.json without the key is skipped and the search goes on up', async () => {
    const dir = tempDir();
    const rc = write(dir, '.flashcardrc.yml', 'deck: Up Here\n');
    write(dir, 'proj/package.json', JSON.stringify({ name: 'x' }));
    const loaded = await loadSettings({ cwd: path.join(dir, 'proj'), env: {} });
    assert.equal(loaded.configFile, rc);
  });

  test('flashcards.config.mjs is loaded', async () => {
    const dir = tempDir();
    const js = write(dir, 'flashcards.config.mjs', 'export default { concurrency: 3 };\n');
    const loaded = await loadSettings({ cwd: dir, env: {} });
    assert.equal(loaded.configFile, js);
    assert.equal(loaded.settings.concurrency, 3);
  });

  test('--config names a file explicitly, relative to cwd, and wins over the searched one', async () => {
    const dir = tempDir();
    write(dir, '.flashcardrc', 'deck: Searched\n');
    const other = write(dir, 'conf/team.yaml', 'deck: Explicit\n');
    const loaded = await loadSettings({ cwd: dir, env: {}, configFile: 'conf/team.yaml' });
    assert.equal(loaded.configFile, other);
    assert.equal(loaded.settings.deck, 'Explicit');
    assert.deepEqual(loaded.sources['deck'], { kind: 'file', detail: other });
  });

  test('a missing --config file is an error', async () => {
    const dir = tempDir();
    const err = await configError({ cwd: dir, env: {}, configFile: 'nope.yaml' });
    assert.deepEqual(err, {
      message: `config file ${path.join(dir, 'nope.yaml')} does not exist`,
      exitCode: 2,
    });
  });

  test('FLASHCARDS_CONFIG names the file when --config is not given', async () => {
    const dir = tempDir();
    const file = write(dir, 'x/settings.json', '{"deck": "From Env File"}');
    const loaded = await loadSettings({ cwd: dir, env: { FLASHCARDS_CONFIG: file } });
    assert.equal(loaded.settings.deck, 'From Env File');
  });
});

describe('loadSettings: errors name the source, the key and what is allowed', () => {
  async function fileError(name: string, content: string): Promise<string> {
    const dir = tempDir();
    write(dir, name, content);
    return (await configError({ cwd: dir, env: {} })).message;
  }

  test('a negative concurrency in the file', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'concurrency: -3\n'),
      '.flashcardrc: concurrency must be an integer >= 1, got -3',
    );
  });

  test('a value above the maximum', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'concurrency: 2000\n'),
      '.flashcardrc: concurrency must be an integer <= 1024, got 2000',
    );
  });

  test('a non-numeric flag', async () => {
    const err = await configError({ cwd: tempDir(), env: {}, flags: { concurrency: 'abc' } });
    assert.deepEqual(err, { message: '--concurrency must be an integer >= 1, got "abc"', exitCode: 2 });
  });

  test('a bad environment variable', async () => {
    const err = await configError({ cwd: tempDir(), env: { FLASHCARDS_RPM: 'fast' } });
    assert.equal(err.message, 'FLASHCARDS_RPM must be a number > 0, got "fast"');
  });

  test('an unknown key, with a did-you-mean', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'concurency: 3\n'),
      '.flashcardrc: unknown key "concurency" (did you mean "concurrency"?)',
    );
    assert.equal(
      await fileError('.flashcardrc', 'cache:\n  TTL: 1d\n'),
      '.flashcardrc: unknown key "cache.TTL" (did you mean "cache.ttl"?)',
    );
    assert.equal(
      await fileError('.flashcardrc', 'rpm: 60\n'),
      '.flashcardrc: unknown key "rpm" (did you mean "limiter.rpm"?)',
    );
    assert.equal(await fileError('.flashcardrc', 'colour: blue\n'), '.flashcardrc: unknown key "colour"');
  });

  test('invalid JSON syntax', async () => {
    assert.equal(
      await fileError('.flashcardrc', '{\n  "deck": "x",\n}\n'),
      '.flashcardrc: invalid JSON at line 3: Expected double-quoted property name',
    );
    assert.equal(
      await fileError('.flashcardrc.json', '{"deck": "x"'),
      ".flashcardrc.json: invalid JSON at line 1: Expected ',' or '}' after property value",
    );
  });

  test('invalid YAML syntax', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'deck: x\n  model: y\n'),
      '.flashcardrc: invalid YAML at line 2: bad indentation of a mapping entry',
    );
  });

  test('a bad duration', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'cache:\n  ttl: soon\n'),
      '.flashcardrc: cache.ttl must be a duration like 30s, 25m or 2h, got "soon"',
    );
    assert.equal(
      await fileError('.flashcardrc', 'timeout: 500\n'),
      '.flashcardrc: timeout must be a duration >= 1s, got 500 (a bare number means milliseconds)',
    );
    const err = await configError({ cwd: tempDir(), env: { FLASHCARDS_TIMEOUT: '10x' } });
    assert.equal(err.message, 'FLASHCARDS_TIMEOUT must be a duration like 30s, 25m or 2h, got "10x"');
  });

  test('enums, groups and whole-file shapes', async () => {
    assert.equal(
      await fileError('.flashcardrc', 'format: docx\n'),
      '.flashcardrc: format must be one of anki, csv, jsonl, json, apkg, got "docx"',
    );
    assert.equal(
      await fileError('.flashcardrc', 'limiter: 5\n'),
      '.flashcardrc: limiter must be a mapping with keys rpm, tpm, burstSeconds, shards, got number 5',
    );
    assert.equal(
      await fileError('.flashcardrc', '- a\n- b\n'),
      '.flashcardrc: expected a mapping of settings, got a list',
    );
  });

  test('a file in a parent directory is named by its full path', async () => {
    const dir = tempDir();
    write(dir, '.flashcardrc', 'temperature: 3\n');
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    const err = await configError({ cwd: sub, env: {} });
    assert.equal(err.message, `${path.join(dir, '.flashcardrc')}: temperature must be a number <= 2, got 3`);
  });

  test('retry.baseDelay above retry.maxDelay names both sources', async () => {
    const dir = tempDir();
    write(dir, '.flashcardrc', 'retry:\n  baseDelay: 2m\n');
    const err = await configError({ cwd: dir, env: {} });
    assert.equal(
      err.message,
      `retry.baseDelay (2m, from ${path.join(dir, '.flashcardrc')}) must be <= retry.maxDelay (30s, from default)`,
    );
  });
});

describe('schema documentation', () => {
  test('.flashcardrc.example parses, validates and mentions every key', async () => {
    const loaded = await loadSettings({
      cwd: tempDir(),
      env: {},
      configFile: path.join(repoRoot, '.flashcardrc.example'),
    });
    assert.equal(loaded.settings.provider, 'openrouter');
    // Limits are left unset in the example: unset means learn them from the provider.
    assert.equal(loaded.settings.limiter.rpm, undefined);
    assert.deepEqual(loaded.settings.prices['anthropic/claude-3.5-haiku'], { input: 0.8, output: 4 });
    const text = fs.readFileSync(path.join(repoRoot, '.flashcardrc.example'), 'utf8');
    for (const { path: key } of describeKeys()) {
      const last = key.split('.').at(-1);
      assert.match(text, new RegExp(`^ *#? *${last}:`, 'm'), `${key} is not documented`);
    }
  });

  test('describeKeys lists each key with a description and its file-form default', () => {
    const keys = describeKeys();
    assert.equal(keys.length, 48);
    assert.deepEqual(
      keys.find((k) => k.path === 'timeout'),
      { path: 'timeout', description: 'Timeout for one API request', default: '60s' },
    );
    assert.ok(keys.every((k) => k.description.length > 0));
  });

  test('every key with a default reads back from the resolved settings (a renamed field is mapped)', async () => {
    const { settings } = await loadSettings({ cwd: tempDir(), env: {} });
    for (const { path: key, default: value } of describeKeys()) {
      if (value === undefined || key === 'apiKey') continue;
      assert.notEqual(
        settingValue(settings, key),
        undefined,
        `${key} does not reach Settings under its name`,
      );
    }
  });

  test('flag names follow the CLI: --base-url, --rpm, --cache-ttl, --no-cache', () => {
    assert.deepEqual(
      ['baseUrl', 'limiter.rpm', 'cache.ttl', 'cache.enabled', 'sourceLanguage', 'retry.maxAttempts'].map(
        flagName,
      ),
      ['--base-url', '--rpm', '--cache-ttl', '--no-cache', '--source-language', '--max-attempts'],
    );
  });

  test('the settings table: every default is a valid value, env names and flags are unique', () => {
    const envs = SETTING_ENTRIES.flatMap(([, spec]) => (spec.env ? [spec.env] : []));
    const flags = SETTING_ENTRIES.flatMap(([path]) => flagName(path) ?? []);
    assert.equal(new Set(envs).size, envs.length);
    assert.equal(new Set(flags).size, flags.length);
    assert.equal(Object.keys(ENV_VARS).length, 39);
    assert.equal(ENV_VARS['FLASHCARDS_CACHE_TTL'], 'cache.ttl');
    for (const [path, spec] of SETTING_ENTRIES) {
      if (spec.default !== undefined) assert.doesNotThrow(() => parseSetting(path, spec.default, path), path);
    }
    assert.equal(settingSpec('limiter.rpm')?.flag?.flags, '--rpm <n>');
    assert.equal(settingSpec('limiter'), undefined);
  });

  test('a flag value for a setting without a flag (the API key) is refused as a bug', async () => {
    await assert.rejects(
      loadSettings({ cwd: tempDir(), env: {}, flags: { apiKey: 'sk-from-a-flag' } }),
      (e: unknown) => isFlashcardsError(e) && e.kind === 'internal' && /apiKey/.test(e.message),
    );
  });

  test('did-you-mean: case-insensitive, then edit distance <= 2, then a nested key with the same name', () => {
    const keys = ['concurrency', 'timeout', 'limiter.rpm'];
    assert.equal(didYouMean('Timeout', keys), 'timeout');
    assert.equal(didYouMean('timeotu', keys), 'timeout');
    assert.equal(didYouMean('rpm', keys), 'limiter.rpm');
    assert.equal(didYouMean('colour', keys), undefined);
  });

  test('importing the loader does not load cosmiconfig until settings are loaded', () => {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const count = () => Object.keys(require.cache).filter((k) => k.includes('cosmiconfig')).length;
      const m = await import(${JSON.stringify(path.join(repoRoot, 'src/config/load.ts'))});
      const before = count();
      await m.loadSettings({ cwd: ${JSON.stringify(tempDir())}, env: {} });
      console.log(JSON.stringify([before, count() > 0]));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(run.stderr, '');
    assert.deepEqual(JSON.parse(run.stdout), [0, true]);
  });
});
