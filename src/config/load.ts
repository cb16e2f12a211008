import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { FlashcardsError } from '../core/errors.ts';
import { didYouMean } from '../core/suggest.ts';
import { expectation, formatGot } from './messages.ts';
import { apiKeyVars, PRESETS, type ProviderPreset, suggestedKeyVar } from './presets.ts';
import {
  configSchema,
  formatMs,
  type Leaf,
  type Settings,
  schemaIndex,
  setPath,
  toSettings,
} from './schema.ts';
import { ENV_VARS, flagName, OTHER_ENV_VARS, settingSpec } from './settings-table.ts';
import { describeSource, displayPath, type ValueSource } from './sources.ts';

export type { SourceKind, ValueSource } from './sources.ts';

export interface LoadedSettings {
  settings: Settings;
  /** Keyed by dotted config path, e.g. 'limiter.rpm', 'timeout', 'apiKey'. */
  sources: Record<string, ValueSource>;
  configFile: string | undefined;
  warnings: string[];
  /** The config file that holds an apiKey (whether or not another source overrides it). */
  apiKeyInFile: string | undefined;
  /** The warning about that key, also in `warnings` (doctor reports it with the key check instead). */
  apiKeyWarning: string | undefined;
}

export interface LoadInput {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Explicit --config file; a missing file is an error. Falls back to FLASHCARDS_CONFIG, then a search. */
  configFile?: string | undefined;
  /**
   * Raw flag values keyed by config path: { 'limiter.rpm': '600', 'cache.enabled': false }. Only
   * settings that have a flag in the settings table; never the API key.
   */
  flags?: Record<string, unknown>;
}

/** Where the config file is looked for, in each directory from cwd up. */
export const SEARCH_PLACES = [
  'package.json',
  '.flashcardrc',
  '.flashcardrc.json',
  '.flashcardrc.yaml',
  '.flashcardrc.yml',
  'flashcards.config.js',
  'flashcards.config.mjs',
];

interface Entry {
  raw: unknown;
  source: ValueSource;
  /** Names the value in messages: ".flashcardrc: concurrency", "FLASHCARDS_RPM", "--rpm". */
  label: string;
  hint: string | undefined;
}

type Layer = Map<string, Entry>;

/**
 * Resolves the settings every command uses: flags > environment > config file > provider
 * preset > defaults. Fails fast with one line naming the source, the key and what is allowed.
 */
export async function loadSettings(input: LoadInput): Promise<LoadedSettings> {
  const warnings: string[] = [];
  const flags = flagLayer(input.flags ?? {});
  const env = envLayer(input.env, warnings);
  const found = await findConfig(input);
  const file = found ? fileLayer(found.config, displayPath(found.path, input.cwd), found.path) : new Map();

  const pick = (path: string): Entry | undefined => flags.get(path) ?? env.get(path) ?? file.get(path);
  const provider = parseEntry('provider', pick('provider')) as ProviderPreset | undefined;
  const preset = presetLayer(provider ?? 'openrouter');
  if (provider === 'custom') requireExplicit(['baseUrl', 'model'], pick);

  const raw: Record<string, unknown> = {};
  const sources: Record<string, ValueSource> = {};
  for (const path of schemaIndex().leaves.keys()) {
    if (path === 'apiKey') continue;
    const entry = pick(path) ?? preset.get(path);
    sources[path] = entry?.source ?? { kind: 'default', detail: 'default' };
    if (entry) setPath(raw, path, entry.raw);
  }

  // Parsed once a run: zod's compiled fast path (built with new Function on first use) would cost
  // more to build than it saves. The same goes for the entries and the pipeline definition.
  const parsed = configSchema.safeParse(raw, { jitless: true });
  if (!parsed.success) {
    // Every value was checked on its own above, so this is a bug in the schema, not in the input.
    throw new FlashcardsError('internal', `settings failed validation: ${parsed.error.message}`);
  }
  checkOrder(
    parsed.data.retry.baseDelay,
    parsed.data.retry.maxDelay,
    'retry.baseDelay',
    'retry.maxDelay',
    sources,
  );
  checkOrder(
    parsed.data.breaker.breakDuration,
    parsed.data.breaker.maxBreakDuration,
    'breaker.breakDuration',
    'breaker.maxBreakDuration',
    sources,
  );

  const key = resolveApiKey(parsed.data.provider, input.env, file, warnings);
  sources['apiKey'] = key.source;
  const settings = toSettings(
    parsed.data,
    key.value,
    key.value === undefined ? undefined : describeKey(key.source),
  );
  return {
    settings,
    sources,
    configFile: found?.path,
    warnings,
    apiKeyInFile: key.inFile,
    apiKeyWarning: key.warning,
  };
}

/** Where the shared state is: a Redis URL and where it was set; undefined for state.db. */
export interface StoreSetting {
  url: string;
  source: ValueSource;
}

/**
 * The `store` setting alone (--store > FLASHCARDS_STORE > the config file), for the commands that
 * only open the state (`breaker status`, `limiter status`, `cache stats`): another key broken in
 * the config file must not hide the state from them, but a broken `store` must not send them to
 * the wrong one. A password in FLASHCARDS_REDIS_PASSWORD is added by the connection, not here.
 */
export async function loadStoreSetting(
  input: LoadInput & { flag?: string | undefined },
): Promise<StoreSetting | undefined> {
  const spec = settingSpec('store');
  const pick = (raw: unknown, source: ValueSource, label: string, hint?: string): StoreSetting => ({
    url: parseEntry('store', { raw, source, label, hint }) as string,
    source,
  });
  if (input.flag !== undefined) return pick(input.flag, { kind: 'flag', detail: '--store' }, '--store');
  const fromEnv = spec?.env === undefined ? undefined : input.env[spec.env];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return pick(fromEnv, { kind: 'env', detail: 'FLASHCARDS_STORE' }, 'FLASHCARDS_STORE');
  }
  const found = await findConfig(input);
  const raw = isPlainObject(found?.config) ? found.config['store'] : undefined;
  if (!found || raw === undefined || raw === null) return undefined;
  const display = displayPath(found.path, input.cwd);
  return pick(raw, { kind: 'file', detail: display }, `${display}: store`, `fix it in ${display}`);
}

/** Checks one config file on its own (keys and values), for `config init` and `config validate`. */
export function checkConfigObject(config: unknown, label: string): void {
  fileLayer(config, label, label);
}

/** Validates one raw value for a config path (e.g. an answer in `config init`); returns it parsed. */
export function parseSetting(path: string, raw: unknown, label: string): unknown {
  if (!leafAt(path)) throw new FlashcardsError('internal', `unknown setting "${path}"`);
  return parseEntry(path, { raw, label, hint: undefined, source: { kind: 'flag', detail: label } });
}

function describeKey(source: ValueSource): string {
  return source.kind === 'flag' ? `flag ${source.detail}` : `${source.kind} ${source.detail}`;
}

function leafAt(path: string): Leaf | undefined {
  return schemaIndex().leaves.get(path);
}

/** Validates one raw value with its own schema, so an error names exactly where it came from. */
function parseEntry(path: string, entry: Entry | undefined): unknown {
  const leaf = leafAt(path);
  if (!entry || !leaf) return undefined;
  const result = leaf.schema.safeParse(entry.raw, { jitless: true });
  if (result.success) return result.data;
  throw new FlashcardsError(
    'config',
    `${entry.label} must be ${expectation(leaf.info, result.error.issues[0])}, got ${formatGot(entry.raw)}${
      leaf.info.duration && typeof entry.raw === 'number' ? ' (a bare number means milliseconds)' : ''
    }`,
    { hint: entry.hint },
  );
}

function flagLayer(flags: Record<string, unknown>): Layer {
  const layer: Layer = new Map();
  for (const [path, raw] of Object.entries(flags)) {
    if (raw === undefined) continue;
    const flag = flagName(path);
    if (!flag || !leafAt(path)) {
      throw new FlashcardsError('internal', `flag value for "${path}", a setting without a flag`);
    }
    const entry = { raw, source: { kind: 'flag' as const, detail: flag }, label: flag, hint: undefined };
    parseEntry(path, entry);
    layer.set(path, entry);
  }
  return layer;
}

function envLayer(env: NodeJS.ProcessEnv, warnings: string[]): Layer {
  const layer: Layer = new Map();
  for (const [name, path] of Object.entries(ENV_VARS)) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    const entry = {
      raw,
      source: { kind: 'env' as const, detail: name },
      label: name,
      hint: `fix or unset ${name} (it overrides the config file)`,
    };
    parseEntry(path, entry);
    layer.set(path, entry);
  }
  const known = [...Object.keys(ENV_VARS), ...OTHER_ENV_VARS];
  for (const name of Object.keys(env)) {
    if (!name.startsWith('FLASHCARDS_') || known.includes(name)) continue;
    const guess = didYouMean(name, known);
    if (guess) warnings.push(`ignoring unknown environment variable ${name} (did you mean ${guess}?)`);
  }
  return layer;
}

function presetLayer(provider: ProviderPreset): Layer {
  const layer: Layer = new Map();
  const source = { kind: 'preset' as const, detail: provider };
  const { baseUrl, model } = PRESETS[provider];
  const hint = undefined;
  if (baseUrl) layer.set('baseUrl', { raw: baseUrl, source, label: `preset ${provider}: baseUrl`, hint });
  if (model) layer.set('model', { raw: model, source, label: `preset ${provider}: model`, hint });
  return layer;
}

function requireExplicit(paths: string[], pick: (path: string) => Entry | undefined): void {
  const missing = paths.filter((p) => !pick(p));
  if (missing.length === 0) return;
  const how = missing
    .map((p) => `${p} in the config file, ${settingSpec(p)?.env} or ${flagName(p)}`)
    .join('; ');
  throw new FlashcardsError('config', `provider "custom" needs an explicit ${missing.join(' and ')}`, {
    hint: `set ${how} (e.g. baseUrl http://localhost:8000/v1)`,
  });
}

function checkOrder(
  low: number,
  high: number,
  lowPath: string,
  highPath: string,
  sources: Record<string, ValueSource>,
) {
  if (low <= high) return;
  const from = (p: string): string => (sources[p] ? describeSource(sources[p]) : 'default');
  throw new FlashcardsError(
    'config',
    `${lowPath} (${formatMs(low)}, from ${from(lowPath)}) must be <= ${highPath} (${formatMs(high)}, from ${from(highPath)})`,
  );
}

/** The API key: the provider's environment variables, else the config file (with a warning). */
function resolveApiKey(
  provider: ProviderPreset,
  env: NodeJS.ProcessEnv,
  file: Layer,
  warnings: string[],
): {
  value: string | undefined;
  source: ValueSource;
  inFile: string | undefined;
  warning: string | undefined;
} {
  const inFile = file.get('apiKey');
  const warning = inFile
    ? `${inFile.source.detail} contains apiKey; keep keys out of files: export ${suggestedKeyVar(provider)}=... instead`
    : undefined;
  if (warning) warnings.push(warning);
  const found = { inFile: inFile?.source.detail, warning };
  for (const name of apiKeyVars(provider)) {
    const value = env[name]?.trim();
    if (value) return { ...found, value, source: { kind: 'env', detail: name } };
  }
  if (inFile) return { ...found, value: parseEntry('apiKey', inFile) as string, source: inFile.source };
  return { ...found, value: undefined, source: { kind: 'default', detail: 'not set' } };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  return typeof v === 'string' ? `the text ${formatGot(v)}` : `${typeof v} ${formatGot(v)}`;
}

/** Flattens a file's object into dotted paths, rejecting unknown keys (with a suggestion) as it goes. */
function fileLayer(config: unknown, display: string, detail: string): Layer {
  const layer: Layer = new Map();
  const { leaves, groups } = schemaIndex();
  const known = [...leaves.keys(), ...groups.keys()];
  if (config === undefined || config === null) return layer;
  if (!isPlainObject(config)) {
    throw new FlashcardsError('config', `${display}: expected a mapping of settings, got ${kindOf(config)}`, {
      hint: 'see .flashcardrc.example, or run "flashcards config init" to write one',
    });
  }
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [key, raw] of Object.entries(obj)) {
      const path = prefix + key;
      // YAML `key:` with nothing after it means "not set here".
      if (raw === undefined || raw === null) continue;
      const children = groups.get(path);
      if (children) {
        if (!isPlainObject(raw)) {
          throw new FlashcardsError(
            'config',
            `${display}: ${path} must be a mapping with keys ${children.join(', ')}, got ${kindOf(raw)}`,
          );
        }
        walk(raw, `${path}.`);
        continue;
      }
      const leaf = leaves.get(path);
      if (!leaf) {
        const guess = didYouMean(path, known);
        const siblings =
          prefix === '' ? [...leaves.keys(), ...groups.keys()].filter((k) => !k.includes('.')) : [];
        const here = prefix === '' ? siblings : (groups.get(prefix.slice(0, -1)) ?? []);
        throw new FlashcardsError(
          'config',
          `${display}: unknown key "${path}"${guess ? ` (did you mean "${guess}"?)` : ''}`,
          { hint: `known keys${prefix ? ` under ${prefix.slice(0, -1)}` : ''}: ${here.join(', ')}` },
        );
      }
      const fallback =
        leaf.info.default === undefined
          ? 'leave it unset'
          : `use the default (${formatGot(leaf.info.default)})`;
      layer.set(path, {
        raw,
        source: { kind: 'file', detail },
        label: `${display}: ${path}`,
        hint: `fix it in ${display}, or remove the key to ${fallback}`,
      });
    }
  };
  walk(config, '');
  for (const [path, entry] of layer) parseEntry(path, entry);
  return layer;
}

interface FoundConfig {
  path: string;
  config: unknown;
}

/** Finds and parses the config file (explicit, FLASHCARDS_CONFIG, or searched from cwd up). */
export async function findConfig(input: {
  cwd: string;
  env: NodeJS.ProcessEnv;
  configFile?: string | undefined;
}): Promise<FoundConfig | undefined> {
  // Loaded lazily: `flashcards --version` should not pay for cosmiconfig and js-yaml.
  const { cosmiconfig, defaultLoaders } = await import('cosmiconfig');
  const yaml = defaultLoaders['.yaml'];
  const show = (file: string): string => displayPath(file, input.cwd);
  const loadYaml = (file: string, content: string): unknown => {
    try {
      return yaml(file, content);
    } catch (e) {
      const { mark, reason } = e as { mark?: { line?: number }; reason?: string };
      const line = mark?.line === undefined ? '' : ` at line ${mark.line + 1}`;
      throw new FlashcardsError('config', `${show(file)}: invalid YAML${line}: ${reason ?? errorText(e)}`);
    }
  };
  const loadJson = (file: string, content: string): unknown => {
    try {
      return JSON.parse(content);
    } catch (e) {
      // Somebody else's broken package.json must not stop us; it just has no settings for us.
      if (file.endsWith('package.json') && input.configFile === undefined) return {};
      throw new FlashcardsError('config', `${show(file)}: invalid JSON${jsonProblem(content, errorText(e))}`);
    }
  };
  // A bare .flashcardrc may be JSON or YAML. One that starts like JSON is held to JSON, so a
  // trailing comma is reported instead of being quietly accepted by the YAML parser.
  const loadRc = (file: string, content: string): unknown =>
    /^\s*[{[]/.test(content) ? loadJson(file, content) : loadYaml(file, content);
  const explorer = cosmiconfig('flashcards', {
    searchPlaces: SEARCH_PLACES,
    searchStrategy: 'global',
    cache: false,
    loaders: { '.json': loadJson, '.yaml': loadYaml, '.yml': loadYaml, noExt: loadRc, default: loadRc },
  });

  const explicit = input.configFile ?? (input.env['FLASHCARDS_CONFIG'] || undefined);
  try {
    if (explicit !== undefined) {
      const path = resolve(input.cwd, explicit);
      const stat = statSync(path, { throwIfNoEntry: false });
      if (!stat?.isFile()) {
        throw new FlashcardsError(
          'config',
          `config file ${path} ${stat ? 'is not a file' : 'does not exist'}`,
          {
            hint:
              input.configFile === undefined
                ? 'fix or unset FLASHCARDS_CONFIG'
                : 'check the --config path, or leave it out to search from the current directory up',
          },
        );
      }
      const result = await explorer.load(path);
      return { path, config: result?.config };
    }
    const result = await explorer.search(input.cwd);
    return result ? { path: result.filepath, config: result.config } : undefined;
  } catch (e) {
    if (e instanceof FlashcardsError) throw e;
    const file = (e as { filepath?: string }).filepath;
    throw new FlashcardsError(
      'config',
      `${file ? show(file) : 'config file'}: cannot load: ${errorText(e)}`,
      {
        cause: e,
      },
    );
  }
}

function errorText(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** " at line 3: Expected double-quoted property name" from V8's JSON.parse message. */
function jsonProblem(content: string, message: string): string {
  const reason = message
    .replace(/\s*(in JSON )?at position \d+.*$/, '')
    .replace(/\s*\(line \d+ column \d+\)$/, '');
  const lineCol = /\(line (\d+) column \d+\)/.exec(message);
  const position = /at position (\d+)/.exec(message);
  let line: number | undefined;
  if (lineCol) line = Number(lineCol[1]);
  else if (position) line = content.slice(0, Number(position[1])).split('\n').length;
  return `${line === undefined ? '' : ` at line ${line}`}: ${reason}`;
}
