import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Table from 'cli-table3';
import {
  checkConfigObject,
  findConfig,
  type LoadedSettings,
  loadSettings,
  parseSetting,
} from '../config/load.ts';
import {
  apiKeyVars,
  needsApiKey,
  PRESETS,
  PROVIDERS,
  type ProviderPreset,
  suggestedKeyVar,
} from '../config/presets.ts';
import { describeKeys, formatMs, type Settings, schemaIndex, settingValue } from '../config/schema.ts';
import { flagName } from '../config/settings-table.ts';
import { describeSource, displayPath } from '../config/sources.ts';
import { errorMessage, FlashcardsError, usageError } from '../core/errors.ts';
import { publicUrl } from '../core/provider-key.ts';
import { redactRedisUrl } from '../store/redis/connection.ts';
import type { CommandContext } from './context.ts';
import { settingsInput } from './state.ts';

/** A cli-table3 table as text, uncoloured unless colour is allowed. */
export function renderTable(head: string[], rows: string[][], color: boolean): string {
  const table = new Table({
    head,
    style: color ? { compact: true } : { head: [], border: [], compact: true },
    wordWrap: true,
  });
  table.push(...rows);
  return `${table.toString()}\n`;
}

/** "sk-…abcd": enough to tell keys apart, never enough to use one. */
export function redactKey(key: string | undefined): string {
  if (!key) return '(not set)';
  return key.length >= 12 ? `${key.slice(0, 3)}…${key.slice(-4)}` : '(set)';
}

/** A value as the table shows it; `lineBreak` separates the entries of a price table (one row per line when piped). */
function render(path: string, value: unknown, lineBreak: string): string {
  if (value === undefined) return '(not set)';
  if (schemaIndex().leaves.get(path)?.info.duration && typeof value === 'number') return formatMs(value);
  if (path === 'prices' && typeof value === 'object' && value !== null) {
    return Object.entries(value as Record<string, { input: number; output: number }>)
      .map(([model, p]) => `${model} ${p.input}/${p.output}`)
      .join(lineBreak);
  }
  if (Array.isArray(value)) return value.join(', ');
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * Settings fit to print: the API key shortened, credentials in the base URL (`?api-key=`) and
 * the store URL's password hidden.
 */
function redacted(settings: Settings): Settings {
  return {
    ...settings,
    baseUrl: publicUrl(settings.baseUrl),
    apiKey: settings.apiKey === undefined ? undefined : redactKey(settings.apiKey),
    store: settings.store === undefined ? undefined : redactRedisUrl(settings.store),
  };
}

function load(ctx: CommandContext, flags: Record<string, unknown> = {}): Promise<LoadedSettings> {
  return loadSettings(settingsInput(ctx, flags));
}

function printWarnings(ctx: CommandContext, warnings: string[]): void {
  for (const w of warnings) ctx.io.err(`warning: ${w}\n`);
}

export interface ConfigShowOptions {
  json?: boolean;
  /** Same record as loadSettings' flags: raw values keyed by config path. */
  flags?: Record<string, unknown>;
}

/**
 * `flashcards config show`: every resolved value with where it came from, the API key redacted;
 * the table (or --json) on stdout, warnings about the configuration on stderr.
 */
export async function configShow(ctx: CommandContext, opts: ConfigShowOptions): Promise<number> {
  const loaded = await load(ctx, opts.flags);
  const { settings, sources, configFile, warnings } = loaded;
  if (opts.json) {
    const out = { configFile, dataDir: ctx.home, settings: redacted(settings), sources, warnings };
    ctx.io.out(`${JSON.stringify(out)}\n`);
    return 0;
  }
  ctx.io.out(
    configFile
      ? `config file: ${configFile}\n`
      : `no config file found; searched from ${ctx.cwd} up (using defaults)\n`,
  );
  const shown = redacted(settings);
  // In a terminal the price list takes a line per model; piped, every key stays on one line for grep.
  const lineBreak = ctx.io.outColumns === undefined ? '; ' : '\n';
  const rows = describeKeys().map(({ path }) => {
    const source = sources[path];
    const value = render(path, settingValue(shown, path), lineBreak);
    return [path, value, source ? describeSource(source) : 'default'];
  });
  ctx.io.out(renderTable(['key', 'value', 'source'], rows, ctx.io.outColor));
  printWarnings(ctx, warnings);
  return 0;
}

export interface ConfigValidateOptions {
  /** The file to check; defaults to --config, then the one found from cwd up. */
  file?: string | undefined;
}

/** `flashcards config validate [file]`: `ok: <file>` or the first problem (exit 2). */
export async function configValidate(ctx: CommandContext, opts: ConfigValidateOptions): Promise<number> {
  const loaded = await loadSettings({ cwd: ctx.cwd, env: ctx.env, configFile: opts.file ?? ctx.configFile });
  if (!loaded.configFile) {
    throw new FlashcardsError('config', `no config file found; searched from ${ctx.cwd} up`, {
      hint: 'create one with "flashcards config init", or name one: flashcards config validate <file>',
    });
  }
  ctx.io.err(`ok: ${displayPath(loaded.configFile, ctx.cwd)}\n`);
  printWarnings(ctx, loaded.warnings);
  return 0;
}

/** `flashcards config path [--json]`: the config file in effect and the data directory, on stdout. */
export async function configPath(ctx: CommandContext, opts: { json?: boolean }): Promise<number> {
  const found = await findConfig({ cwd: ctx.cwd, env: ctx.env, configFile: ctx.configFile });
  if (opts.json) {
    ctx.io.out(
      `${JSON.stringify({ configFile: found?.path ?? null, dataDir: ctx.home, searchedFrom: ctx.cwd })}\n`,
    );
    return 0;
  }
  ctx.io.out(found ? `config file: ${found.path}\n` : `no config file found; searched from ${ctx.cwd} up\n`);
  ctx.io.out(`data directory: ${ctx.home}\n`);
  return 0;
}

/** The prompts `config init` asks; @inquirer/prompts by default, scripted in tests. */
export interface InitPrompts {
  select<T extends string>(q: {
    message: string;
    choices: { name: string; value: T; description?: string }[];
    default?: T;
  }): Promise<T>;
  input(q: {
    message: string;
    default?: string;
    validate?: (value: string) => true | string;
  }): Promise<string>;
  number(q: {
    message: string;
    default?: number | undefined;
    min?: number;
    required?: boolean;
  }): Promise<number | undefined>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
}

async function inquirerPrompts(): Promise<InitPrompts> {
  const p = await import('@inquirer/prompts');
  // Prompts go to stderr: stdout is for machine output only.
  const context = { output: process.stderr };
  return {
    select: (q) => p.select(q, context),
    input: (q) => p.input(q, context),
    number: (q) => p.number({ ...q, required: false }, context),
    confirm: (q) => p.confirm(q, context),
  };
}

export interface ConfigInitOptions {
  yes?: boolean;
  force?: boolean;
  /** Where to write; defaults to .flashcardrc in ctx.cwd. */
  file?: string;
  provider?: string;
  model?: string;
  baseUrl?: string;
  sourceLanguage?: string;
  targetLanguage?: string;
  deck?: string;
  rpm?: string | number;
  tpm?: string | number;
  prompts?: InitPrompts;
}

interface InitAnswers {
  provider: ProviderPreset;
  baseUrl: string | undefined;
  model: string | undefined;
  sourceLanguage: string;
  targetLanguage: string;
  deck: string;
  rpm: number | undefined;
  tpm: number | undefined;
}

function fromFlag<T>(path: string, raw: unknown): T | undefined {
  return raw === undefined ? undefined : (parseSetting(path, raw, flagName(path) ?? path) as T);
}

/** An input validator built from the schema, so the wizard rejects exactly what the loader would. */
function validator(path: string): (value: string) => true | string {
  return (value) => {
    try {
      parseSetting(path, value, path);
      return true;
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  };
}

/**
 * `flashcards config init`: writes a valid `.flashcardrc` (never with the API key) from a wizard
 * on a terminal, or from flags and defaults with --yes.
 */
export async function configInit(ctx: CommandContext, opts: ConfigInitOptions): Promise<number> {
  const target = resolve(ctx.cwd, opts.file ?? '.flashcardrc');
  const shown = displayPath(target, ctx.cwd);
  if (existsSync(target) && !opts.force) {
    throw new FlashcardsError('config', `${shown} already exists`, {
      hint: 'pass --force to overwrite it, or edit it by hand (flashcards config validate checks it)',
    });
  }
  const interactive = ctx.io.isTTY && !opts.yes;
  if (!interactive && !opts.yes) {
    throw usageError(
      'config init asks questions, but stderr is not a terminal',
      'pass --yes to write the defaults plus any flags given (e.g. --yes --provider openai --model gpt-4o-mini)',
    );
  }
  const given: InitAnswers = {
    provider: fromFlag<ProviderPreset>('provider', opts.provider) ?? 'openrouter',
    baseUrl: fromFlag<string>('baseUrl', opts.baseUrl),
    model: fromFlag<string>('model', opts.model),
    sourceLanguage: fromFlag<string>('sourceLanguage', opts.sourceLanguage) ?? 'Korean',
    targetLanguage: fromFlag<string>('targetLanguage', opts.targetLanguage) ?? 'English',
    deck: fromFlag<string>('deck', opts.deck) ?? '',
    rpm: fromFlag<number>('limiter.rpm', opts.rpm),
    tpm: fromFlag<number>('limiter.tpm', opts.tpm),
  };
  let answers = given;
  if (interactive) {
    try {
      answers = await ask(given, opts.prompts ?? (await inquirerPrompts()));
    } catch (e) {
      if (e instanceof Error && e.name === 'ExitPromptError') {
        throw new FlashcardsError('cancelled', 'config init cancelled; nothing written', { exitCode: 130 });
      }
      throw e;
    }
  }
  const config = fileContents(answers);
  checkConfigObject(config, shown);
  const preset = PRESETS[answers.provider];
  if (answers.provider === 'custom' && (!config['baseUrl'] || !config['model'])) {
    throw usageError(
      'provider custom needs a base URL and a model',
      'pass --base-url <url> and --model <name>',
    );
  }
  const text = `${JSON.stringify(config, null, 2)}\n`;
  if (interactive) {
    ctx.io.err(`\n${text}`);
    const ok = await (opts.prompts ?? (await inquirerPrompts())).confirm({
      message: `Write ${shown}?`,
      default: true,
    });
    if (!ok) {
      ctx.io.err('nothing written\n');
      return 0;
    }
  }
  try {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text, { flag: opts.force ? 'w' : 'wx' });
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new FlashcardsError(
      'config',
      `cannot write ${shown}: ${code === 'EEXIST' ? 'it already exists' : errorMessage(e)}`,
      {
        hint: code === 'EEXIST' ? 'pass --force to overwrite it' : undefined,
        cause: e,
      },
    );
  }
  const model = String(config['model'] ?? preset.model);
  ctx.io.err(`wrote ${shown} (provider ${answers.provider}, model ${model})\n`);
  const baseUrl = String(config['baseUrl'] ?? preset.baseUrl);
  if (needsApiKey(answers.provider, baseUrl) || answers.provider === 'custom') {
    const name = suggestedKeyVar(answers.provider);
    const already = apiKeyVars(answers.provider).find((v) => ctx.env[v]?.trim());
    const where = preset.keyUrl ? ` (get one at ${preset.keyUrl})` : '';
    ctx.io.err(
      answers.provider === 'custom'
        ? `if your server needs a key: export ${name}=...\n`
        : `next: export ${name}=...${where}\n`,
    );
    ctx.io.err(
      already
        ? `      (${already} is already set in this shell; the key belongs in the environment, not in ${shown})\n`
        : `      the key belongs in the environment; it is never written to ${shown}\n`,
    );
  }
  ctx.io.err('then: flashcards doctor\n');
  return 0;
}

/** What leaving a rate limit empty in the wizard means (README: "unset = learn from its headers and 429s"). */
const LEARNED = "empty = learn it from the provider's rate-limit headers and 429s";

async function ask(given: InitAnswers, prompts: InitPrompts): Promise<InitAnswers> {
  const provider = await prompts.select({
    message: 'Which provider?',
    choices: PROVIDERS.map((p) => ({ name: PRESETS[p].label, value: p })),
    default: given.provider,
  });
  const preset = PRESETS[provider];
  let baseUrl = given.baseUrl;
  if (provider === 'custom' || preset.local) {
    if (provider !== 'mock') {
      const defaultUrl = baseUrl ?? preset.baseUrl;
      baseUrl = await prompts.input({
        message: 'Base URL of the OpenAI-compatible API',
        ...(defaultUrl ? { default: defaultUrl } : {}),
        validate: validator('baseUrl'),
      });
    }
  }
  let model = given.model;
  if (provider !== 'mock') {
    const defaultModel = model ?? preset.model;
    model = await prompts.input({
      message: 'Model',
      ...(defaultModel ? { default: defaultModel } : {}),
      validate: validator('model'),
    });
  }
  const sourceLanguage = await prompts.input({
    message: 'Language of your word lists',
    default: given.sourceLanguage,
    validate: validator('sourceLanguage'),
  });
  const targetLanguage = await prompts.input({
    message: 'Language the cards should explain them in',
    default: given.targetLanguage,
    validate: validator('targetLanguage'),
  });
  const deck = await prompts.input({
    message: 'Anki deck name',
    default: given.deck || `${sourceLanguage} Vocabulary`,
    validate: validator('deck'),
  });
  let { rpm, tpm } = given;
  if (!preset.local) {
    // An unset limit is not "no limit": the limiter starts carefully and learns the provider's.
    rpm = await prompts.number({
      message: `Requests per minute your plan allows (${LEARNED})`,
      default: rpm,
    });
    tpm = await prompts.number({
      message: `Tokens per minute your plan allows (${LEARNED})`,
      default: tpm,
    });
  }
  return { provider, baseUrl, model, sourceLanguage, targetLanguage, deck, rpm, tpm };
}

/** Only what differs from the preset or was chosen, so later default changes still reach the user. */
function fileContents(a: InitAnswers): Record<string, unknown> {
  const preset = PRESETS[a.provider];
  const config: Record<string, unknown> = { provider: a.provider };
  if (a.baseUrl && a.baseUrl !== preset.baseUrl) config['baseUrl'] = a.baseUrl;
  config['model'] = a.model ?? preset.model;
  config['sourceLanguage'] = a.sourceLanguage;
  config['targetLanguage'] = a.targetLanguage;
  config['deck'] = a.deck || `${a.sourceLanguage} Vocabulary`;
  if (a.rpm !== undefined || a.tpm !== undefined) {
    config['limiter'] = {
      ...(a.rpm === undefined ? {} : { rpm: a.rpm }),
      ...(a.tpm === undefined ? {} : { tpm: a.tpm }),
    };
  }
  return config;
}
