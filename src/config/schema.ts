import { z } from 'zod';
import { parseDuration } from '../core/duration.ts';
import { trimBaseUrl } from '../core/endpoint-url.ts';
import { splitList } from '../core/list.ts';
import { OUTPUT_FORMATS, type OutputFormat } from '../output/types.ts';
import { PROVIDERS, type ProviderPreset } from './presets.ts';

/** What a valid value looks like, for one-line error messages. */
export interface LeafShape {
  /** "an integer", "a duration", "one of anki, csv, jsonl". */
  noun: string;
  /** Replaces noun and bounds when the value has the wrong type altogether. */
  shape?: string;
  min?: number;
  minExclusive?: boolean;
  max?: number;
  /** Bounds are milliseconds and print as durations. */
  duration?: boolean;
}

export interface LeafInfo extends LeafShape {
  description: string;
  /** Default in config-file form ("60s"), undefined when the setting is unset by default. */
  default: unknown;
}

interface Base<T extends z.ZodType> {
  schema: T;
  shape: LeafShape;
}

const leafInfo = new WeakMap<z.ZodType, LeafInfo>();
const groupInfo = new WeakMap<z.ZodType, { description: string; shape: Record<string, z.ZodType> }>();

// Values from the environment and the command line are strings; files may hold either.
const toNumber = (v: unknown): unknown =>
  typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;

const booleanWords: Record<string, boolean> = {
  true: true,
  yes: true,
  on: true,
  '1': true,
  false: false,
  no: false,
  off: false,
  '0': false,
};

function text(): Base<z.ZodString> {
  return { schema: z.string().trim().min(1), shape: { noun: 'a non-empty string' } };
}

function choice<const T extends readonly [string, ...string[]]>(values: T) {
  return {
    schema: z.preprocess((v) => (typeof v === 'string' ? v.trim().toLowerCase() : v), z.enum(values)),
    shape: { noun: `one of ${values.join(', ')}` },
  };
}

function integer(min: number, max: number) {
  return {
    schema: z.preprocess(toNumber, z.number().int().min(min).max(max)),
    shape: { noun: 'an integer', min, max },
  };
}

function decimal(bounds: { min: number; minExclusive?: boolean; max?: number }) {
  let n = bounds.minExclusive ? z.number().gt(bounds.min) : z.number().min(bounds.min);
  if (bounds.max !== undefined) n = n.max(bounds.max);
  return { schema: z.preprocess(toNumber, n), shape: { noun: 'a number', ...bounds } };
}

/** Strings like "30s"/"25m"/"30d" (a bare number in a string means seconds); JSON numbers are milliseconds. */
function duration(min: number) {
  const toMs = (v: unknown): unknown => {
    if (typeof v !== 'string') return v;
    try {
      return parseDuration(v, 'duration');
    } catch {
      return v;
    }
  };
  return {
    schema: z.preprocess(toMs, z.number().int().min(min)),
    shape: { noun: 'a duration', shape: 'a duration like 30s, 25m or 2h', min, duration: true },
  };
}

function flag() {
  const toBoolean = (v: unknown): unknown =>
    typeof v === 'string' ? (booleanWords[v.trim().toLowerCase()] ?? v) : v;
  return { schema: z.preprocess(toBoolean, z.boolean()), shape: { noun: 'true or false' } };
}

function url(example = 'https://api.openai.com/v1', protocols = ['http:', 'https:', 'mock:']) {
  const valid = (v: string): boolean => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  };
  return {
    schema: z.string().trim().refine(valid),
    shape: { noun: `an http(s) URL like ${example}` },
  };
}

/** Lists come as comma-separated text from env or flags, as lists from a config file. */
function splitCommas(v: unknown): unknown {
  return typeof v === 'string' ? splitList(v) : v;
}

function nameList() {
  return {
    schema: z.preprocess(splitCommas, z.array(z.string().min(1)).min(1)),
    shape: { noun: 'a comma-separated list of names' },
  };
}

function tagList() {
  return {
    schema: z.preprocess(splitCommas, z.array(z.string().regex(/^\S+$/))),
    shape: { noun: 'a list of tags without spaces' },
  };
}

function shardCount() {
  return {
    schema: z.preprocess(
      (v) => (v === 'auto' ? v : toNumber(v)),
      z.union([z.literal('auto'), z.number().int().min(1).max(64)]),
    ),
    shape: { noun: '"auto" or an integer' },
  };
}

function priceTable() {
  const price = z.strictObject({ input: z.number().min(0), output: z.number().min(0) });
  return {
    schema: z.record(z.string().min(1), price),
    shape: { noun: 'a mapping of model name to { input, output } in USD per 1M tokens' },
  };
}

function setting<T extends z.ZodType>(base: Base<T>, defaultValue: z.input<T>, description: string) {
  const schema = base.schema.prefault(defaultValue as never).describe(description);
  leafInfo.set(schema, { ...base.shape, description, default: defaultValue });
  return schema;
}

function optional<T extends z.ZodType>(base: Base<T>, description: string) {
  const schema = base.schema.optional().describe(description);
  leafInfo.set(schema, { ...base.shape, description, default: undefined });
  return schema;
}

function group<S extends Record<string, z.ZodType>>(description: string, shape: S) {
  const schema = z
    .strictObject(shape)
    .prefault({} as never)
    .describe(description);
  groupInfo.set(schema, { description, shape });
  return schema;
}

const SECOND = 1000;

/**
 * Every setting, in config-file form: key names as written in `.flashcardrc`, durations
 * parsed to milliseconds. Defaults and descriptions live here and nowhere else.
 */
export const configSchema = z.strictObject({
  provider: setting(
    choice(PROVIDERS),
    'openrouter',
    'Provider preset; sets the default baseUrl, model and API key variable',
  ),
  baseUrl: setting(
    url(),
    'https://openrouter.ai/api/v1',
    'OpenAI-compatible API base URL (default from the provider)',
  ),
  model: setting(text(), 'openai/gpt-4o-mini', 'Model name sent to the API (default from the provider)'),
  apiKey: optional(
    text(),
    'API key; better kept out of files: set FLASHCARDS_API_KEY or the provider variable (e.g. OPENROUTER_API_KEY)',
  ),
  sourceLanguage: setting(text(), 'Korean', 'Language of the words in your list'),
  targetLanguage: setting(text(), 'English', 'Language the cards explain them in'),
  pipeline: setting(
    text(),
    'vocabulary',
    'Built-in pipeline (vocabulary, cloze, topics) or the path of a pipeline file (.yaml/.json)',
  ),
  deck: setting(text(), 'Korean Vocabulary', "Anki deck the cards go into (default: the pipeline's)"),
  noteType: setting(text(), 'Basic', "Anki note type (default: the pipeline's)"),
  tags: setting(tagList(), ['flashcards'], 'Tags added to every card (comma-separated in env/flags)'),
  fields: optional(
    nameList(),
    'Columns/fields to write, in order: card fields, term, tags (comma-separated); unset = all',
  ),
  format: setting(choice(OUTPUT_FORMATS), 'anki', 'Output format: anki, csv, jsonl, json or apkg'),
  ankiConnectUrl: setting(
    url('http://127.0.0.1:8765', ['http:', 'https:']),
    'http://127.0.0.1:8765',
    'AnkiConnect address used by --to anki-connect',
  ),
  concurrency: setting(integer(1, 256), 8, 'Requests in flight at once'),
  timeout: setting(duration(SECOND), '60s', 'Timeout for one API request'),
  maxTokens: setting(integer(1, 1_000_000), 1500, 'max_tokens for each completion'),
  temperature: setting(decimal({ min: 0, max: 2 }), 0.3, 'Sampling temperature'),
  maxDuration: optional(duration(SECOND), 'Deadline for a whole run (e.g. 25m); unset = no deadline'),
  limiter: group('Client-side rate limits, shared by every process using the same provider and key', {
    rpm: optional(
      decimal({ min: 0, minExclusive: true }),
      'Requests per minute allowed by your plan; unset = no limit',
    ),
    tpm: optional(
      decimal({ min: 0, minExclusive: true }),
      'Tokens per minute allowed by your plan; unset = no limit',
    ),
    burstSeconds: setting(
      decimal({ min: 0, minExclusive: true, max: 3600 }),
      1,
      'How many seconds of rate may be spent at once',
    ),
    shards: setting(shardCount(), 'auto', 'Limiter shards that spread write contention between processes'),
  }),
  cache: group('Response cache (cache.db)', {
    enabled: setting(flag(), true, 'Reuse earlier responses for identical requests'),
    ttl: setting(duration(0), '30d', 'How long a cached response stays fresh; 0 = forever'),
    jitter: setting(decimal({ min: 0, max: 1 }), 0.1, 'Random spread of expiry times, as a fraction of ttl'),
    compressThreshold: setting(
      integer(0, 1 << 30),
      1024,
      'Bodies of at least this many bytes are compressed',
    ),
    staleIfError: setting(flag(), false, 'Serve an expired response when the provider fails'),
  }),
  retry: group('Retries of failed requests (full jitter, Retry-After respected)', {
    maxAttempts: setting(integer(1, 100), 6, 'Attempts per request, including the first'),
    baseDelay: setting(duration(0), '1s', 'First backoff delay'),
    maxDelay: setting(duration(0), '30s', 'Longest backoff delay'),
  }),
  breaker: group('Circuit breaker, shared by every process using the same provider and key', {
    samplingWindow: setting(duration(SECOND), '30s', 'Window over which the failure ratio is measured'),
    failureRatio: setting(
      decimal({ min: 0, minExclusive: true, max: 1 }),
      0.5,
      'Failure ratio that opens the breaker',
    ),
    minThroughput: setting(
      integer(1, 1_000_000),
      10,
      'Calls needed in the window before the breaker may open',
    ),
    breakDuration: setting(duration(SECOND), '30s', 'First open period'),
    maxBreakDuration: setting(
      duration(SECOND),
      '5m',
      'Longest open period (it doubles while failures continue)',
    ),
    maxWait: setting(duration(0), '3m', 'How long a run waits for an open breaker before giving up'),
  }),
  progressInterval: setting(
    duration(100),
    '10s',
    'Period of the progress line when stderr is not a terminal',
  ),
  prices: setting(
    priceTable(),
    {},
    'Extra model prices (USD per 1M tokens), merged over the built-in ones, for cost estimates',
  ),
});

/** Parsed config-file values (durations in ms, keys as in the file). */
export type ConfigValues = z.output<typeof configSchema>;

export interface Price {
  input: number;
  output: number;
}

export const DEFAULT_PRICES: Readonly<Record<string, Price>> = {
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'openai/gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'llama-3.3-70b-versatile': { input: 0.59, output: 0.79 },
  mock: { input: 0, output: 0 },
};

/** What a batch's tokens cost at the model's price, in USD; null when the price is unknown. */
export function costOf(settings: Settings, prompt: number, completion: number): number | null {
  const price = settings.prices[settings.model];
  if (!price) return null;
  return Math.round(prompt * price.input + completion * price.output) / 1_000_000;
}

/** The one resolved configuration every command uses. */
export interface Settings {
  provider: ProviderPreset;
  baseUrl: string;
  model: string;
  apiKey: string | undefined;
  /** Where the key came from, e.g. 'env FLASHCARDS_API_KEY'; never the key itself. */
  apiKeySource: string | undefined;
  sourceLanguage: string;
  targetLanguage: string;
  pipeline: string;
  deck: string;
  noteType: string;
  tags: string[];
  fields: string[] | undefined;
  format: OutputFormat;
  ankiConnectUrl: string;
  concurrency: number;
  timeoutMs: number;
  maxTokens: number;
  temperature: number;
  maxDurationMs: number | undefined;
  limiter: {
    rpm: number | undefined;
    tpm: number | undefined;
    burstSeconds: number;
    shards: number | 'auto';
  };
  cache: {
    enabled: boolean;
    ttlMs: number;
    jitter: number;
    compressThresholdBytes: number;
    staleIfError: boolean;
  };
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  breaker: {
    samplingWindowMs: number;
    failureRatio: number;
    minThroughput: number;
    breakDurationMs: number;
    maxBreakDurationMs: number;
    maxWaitMs: number;
  };
  progressIntervalMs: number;
  prices: Record<string, Price>;
}

export function toSettings(
  c: ConfigValues,
  apiKey: string | undefined,
  apiKeySource: string | undefined,
): Settings {
  return {
    provider: c.provider,
    // Trailing slashes of the path only: a query (`?api-version=`) is kept as written.
    baseUrl: trimBaseUrl(c.baseUrl),
    model: c.model,
    apiKey,
    apiKeySource,
    sourceLanguage: c.sourceLanguage,
    targetLanguage: c.targetLanguage,
    pipeline: c.pipeline,
    deck: c.deck,
    noteType: c.noteType,
    tags: c.tags,
    fields: c.fields,
    format: c.format,
    ankiConnectUrl: c.ankiConnectUrl.replace(/\/+$/, ''),
    concurrency: c.concurrency,
    timeoutMs: c.timeout,
    maxTokens: c.maxTokens,
    temperature: c.temperature,
    maxDurationMs: c.maxDuration,
    limiter: {
      rpm: c.limiter.rpm,
      tpm: c.limiter.tpm,
      burstSeconds: c.limiter.burstSeconds,
      shards: c.limiter.shards,
    },
    cache: {
      enabled: c.cache.enabled,
      ttlMs: c.cache.ttl,
      jitter: c.cache.jitter,
      compressThresholdBytes: c.cache.compressThreshold,
      staleIfError: c.cache.staleIfError,
    },
    retry: { maxAttempts: c.retry.maxAttempts, baseDelayMs: c.retry.baseDelay, maxDelayMs: c.retry.maxDelay },
    breaker: {
      samplingWindowMs: c.breaker.samplingWindow,
      failureRatio: c.breaker.failureRatio,
      minThroughput: c.breaker.minThroughput,
      breakDurationMs: c.breaker.breakDuration,
      maxBreakDurationMs: c.breaker.maxBreakDuration,
      maxWaitMs: c.breaker.maxWait,
    },
    progressIntervalMs: c.progressInterval,
    prices: { ...DEFAULT_PRICES, ...c.prices },
  };
}

/** Config-file paths whose Settings field has another name. */
const settingsNames: Record<string, string> = {
  timeout: 'timeoutMs',
  maxDuration: 'maxDurationMs',
  progressInterval: 'progressIntervalMs',
  'cache.ttl': 'cache.ttlMs',
  'cache.compressThreshold': 'cache.compressThresholdBytes',
  'retry.baseDelay': 'retry.baseDelayMs',
  'retry.maxDelay': 'retry.maxDelayMs',
  'breaker.samplingWindow': 'breaker.samplingWindowMs',
  'breaker.breakDuration': 'breaker.breakDurationMs',
  'breaker.maxBreakDuration': 'breaker.maxBreakDurationMs',
  'breaker.maxWait': 'breaker.maxWaitMs',
};

/** Reads the value of a config-file path (e.g. 'cache.ttl') out of resolved Settings. */
export function settingValue(settings: Settings, path: string): unknown {
  let value: unknown = settings;
  for (const part of (settingsNames[path] ?? path).split('.')) {
    value = (value as Record<string, unknown> | undefined)?.[part];
  }
  return value;
}

export interface Leaf {
  path: string;
  schema: z.ZodType;
  info: LeafInfo;
}

let index: { leaves: Map<string, Leaf>; groups: Map<string, string[]> } | undefined;

/** Every setting by dotted path, and every group with its child keys, in schema order. */
export function schemaIndex(): { leaves: Map<string, Leaf>; groups: Map<string, string[]> } {
  if (index) return index;
  const leaves = new Map<string, Leaf>();
  const groups = new Map<string, string[]>();
  const walk = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [key, schema] of Object.entries(shape)) {
      const path = prefix + key;
      const nested = groupInfo.get(schema);
      if (nested) {
        groups.set(path, Object.keys(nested.shape));
        walk(nested.shape, `${path}.`);
        continue;
      }
      const info = leafInfo.get(schema);
      if (!info) throw new Error(`config schema: ${path} was declared without setting()/optional()`);
      leaves.set(path, { path, schema, info });
    }
  };
  walk(configSchema.shape, '');
  index = { leaves, groups };
  return index;
}

/** A setting's default (config-file form); undefined for an unknown path. */
export function settingDefault(path: string): unknown {
  return schemaIndex().leaves.get(path)?.info.default;
}

/** Every key with its description and default (config-file form), for docs and `config show`. */
export function describeKeys(): { path: string; description: string; default: unknown }[] {
  return [...schemaIndex().leaves.values()].map(({ path, info }) => ({
    path,
    description: info.description,
    default: path === 'prices' ? { ...DEFAULT_PRICES } : info.default,
  }));
}

/** 90000 -> "90s", 1800000 -> "30m", 0 -> "0": the largest unit that divides exactly. */
export function formatMs(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
