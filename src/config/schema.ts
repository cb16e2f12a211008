import { z } from 'zod';
import { parseDuration } from '../core/duration.ts';
import { trimBaseUrl } from '../core/endpoint-url.ts';
import { splitList } from '../core/list.ts';
import { OUTPUT_FORMATS, type OutputFormat } from '../output/types.ts';
import { PROVIDERS, type ProviderPreset } from './presets.ts';
import {
  SETTING_ENTRIES,
  SETTING_GROUPS,
  SETTINGS,
  type SettingPath,
  type SettingSpec,
  settingSpec,
} from './settings-table.ts';

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

const leafInfo = new WeakMap<z.ZodType, LeafInfo & { path: string }>();
const groupInfo = new WeakMap<z.ZodType, Record<string, z.ZodType>>();

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

/** A shared store's URL: Redis over TCP, TLS or a unix socket (store/redis/connection.ts reads it). */
function storeUrl() {
  const schemes = ['redis:', 'rediss:', 'redis+unix:', 'unix:', 'redis-cluster:', 'rediss-cluster:'];
  const valid = (v: string): boolean => {
    try {
      return schemes.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  };
  return {
    schema: z.string().trim().refine(valid),
    shape: {
      noun: 'a Redis URL like redis://host:6379/0, rediss://host:6380 or redis+unix:///run/redis.sock',
    },
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

/**
 * A leaf of the schema: the validator for `path`, with the default and description from the
 * settings table. A setting without a default in the table is optional (unset unless given).
 */
type LeafSchema<P extends SettingPath, T extends z.ZodType> = (typeof SETTINGS)[P] extends {
  default: unknown;
}
  ? z.ZodPrefault<T>
  : z.ZodOptional<T>;

function setting<P extends SettingPath, T extends z.ZodType>(path: P, base: Base<T>): LeafSchema<P, T> {
  const spec: SettingSpec = SETTINGS[path];
  const schema = (
    spec.default === undefined ? base.schema.optional() : base.schema.prefault(spec.default as never)
  ).describe(spec.description);
  leafInfo.set(schema, { ...base.shape, path, description: spec.description, default: spec.default });
  return schema as LeafSchema<P, T>;
}

function group<S extends Record<string, z.ZodType>>(name: keyof typeof SETTING_GROUPS, shape: S) {
  const schema = z
    .strictObject(shape)
    .prefault({} as never)
    .describe(SETTING_GROUPS[name]);
  groupInfo.set(schema, shape);
  return schema;
}

const SECOND = 1000;

/**
 * Every setting, in config-file form: key names as written in `.flashcardrc`, durations parsed
 * to milliseconds. What a valid value is lives here; defaults, descriptions, environment
 * variables and flags live in the settings table (settings-table.ts), in the same order.
 */
export const configSchema = z.strictObject({
  provider: setting('provider', choice(PROVIDERS)),
  baseUrl: setting('baseUrl', url()),
  model: setting('model', text()),
  apiKey: setting('apiKey', text()),
  sourceLanguage: setting('sourceLanguage', text()),
  targetLanguage: setting('targetLanguage', text()),
  pipeline: setting('pipeline', text()),
  deck: setting('deck', text()),
  noteType: setting('noteType', text()),
  tags: setting('tags', tagList()),
  fields: setting('fields', nameList()),
  format: setting('format', choice(OUTPUT_FORMATS)),
  ankiConnectUrl: setting('ankiConnectUrl', url('http://127.0.0.1:8765', ['http:', 'https:'])),
  concurrency: setting('concurrency', integer(1, 1024)),
  maxConcurrency: setting('maxConcurrency', integer(1, 1024)),
  timeout: setting('timeout', duration(SECOND)),
  maxTokens: setting('maxTokens', integer(1, 1_000_000)),
  temperature: setting('temperature', decimal({ min: 0, max: 2 })),
  maxDuration: setting('maxDuration', duration(SECOND)),
  limiter: group('limiter', {
    rpm: setting('limiter.rpm', decimal({ min: 0, minExclusive: true })),
    tpm: setting('limiter.tpm', decimal({ min: 0, minExclusive: true })),
    burstSeconds: setting('limiter.burstSeconds', decimal({ min: 0, minExclusive: true, max: 3600 })),
    shards: setting('limiter.shards', shardCount()),
  }),
  cache: group('cache', {
    enabled: setting('cache.enabled', flag()),
    ttl: setting('cache.ttl', duration(0)),
    jitter: setting('cache.jitter', decimal({ min: 0, max: 1 })),
    compressThreshold: setting('cache.compressThreshold', integer(0, 1 << 30)),
    staleIfError: setting('cache.staleIfError', flag()),
  }),
  retry: group('retry', {
    maxAttempts: setting('retry.maxAttempts', integer(1, 100)),
    baseDelay: setting('retry.baseDelay', duration(0)),
    maxDelay: setting('retry.maxDelay', duration(0)),
    window: setting('retry.window', duration(0)),
  }),
  breaker: group('breaker', {
    samplingWindow: setting('breaker.samplingWindow', duration(SECOND)),
    failureRatio: setting('breaker.failureRatio', decimal({ min: 0, minExclusive: true, max: 1 })),
    minThroughput: setting('breaker.minThroughput', integer(1, 1_000_000)),
    breakDuration: setting('breaker.breakDuration', duration(SECOND)),
    maxBreakDuration: setting('breaker.maxBreakDuration', duration(SECOND)),
    maxWait: setting('breaker.maxWait', duration(0)),
  }),
  progressInterval: setting('progressInterval', duration(100)),
  logs: group('logs', {
    keep: setting('logs.keep', duration(0)),
    keepFiles: setting('logs.keepFiles', integer(1, 1_000_000)),
  }),
  batchApi: group('batchApi', {
    available: setting('batchApi.available', flag()),
    discount: setting('batchApi.discount', decimal({ min: 0, max: 1 })),
    maxRequests: setting('batchApi.maxRequests', integer(1, 1_000_000)),
    maxBytes: setting('batchApi.maxBytes', integer(1024, 2 ** 40)),
  }),
  store: setting('store', storeUrl()),
  metricsFile: setting('metricsFile', text()),
  prices: setting('prices', priceTable()),
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
export function costOf(
  settings: Pick<Settings, 'model' | 'prices'>,
  prompt: number,
  completion: number,
): number | null {
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
  /** Pinned by --concurrency; undefined: steered by the concurrency controller. */
  concurrency: number | undefined;
  maxConcurrency: number;
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
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number; windowMs: number };
  breaker: {
    samplingWindowMs: number;
    failureRatio: number;
    minThroughput: number;
    breakDurationMs: number;
    maxBreakDurationMs: number;
    maxWaitMs: number;
  };
  progressIntervalMs: number;
  logs: { keepMs: number; keepFiles: number };
  batchApi: { available: boolean; discount: number; maxRequests: number; maxBytes: number };
  /** A Redis URL for state shared by several machines; undefined: state.db and cache.db. */
  store: string | undefined;
  /** Prometheus textfile written at the end of each process run (--metrics-file); undefined: none. */
  metricsFile: string | undefined;
  prices: Record<string, Price>;
}

/** Settings from parsed config values: each value under its Settings field (see the table's `field`). */
export function toSettings(
  c: ConfigValues,
  apiKey: string | undefined,
  apiKeySource: string | undefined,
): Settings {
  const out: Record<string, unknown> = {};
  for (const [path, spec] of SETTING_ENTRIES) {
    if (path === 'apiKey') {
      // Resolved apart from the other values (env variables of the provider, never a flag).
      out['apiKey'] = apiKey;
      out['apiKeySource'] = apiKeySource;
      continue;
    }
    setPath(out, spec.field ?? path, getPath(c, path));
  }
  // Checked against the Settings type by the tests that compare whole resolved Settings.
  const settings = out as unknown as Settings;
  // Trailing slashes of the path only: a query (`?api-version=`) is kept as written.
  settings.baseUrl = trimBaseUrl(c.baseUrl);
  settings.ankiConnectUrl = c.ankiConnectUrl.replace(/\/+$/, '');
  settings.prices = { ...DEFAULT_PRICES, ...c.prices };
  return settings;
}

/** Reads the value of a config-file path (e.g. 'cache.ttl') out of resolved Settings. */
export function settingValue(settings: Settings, path: string): unknown {
  return getPath(settings, settingSpec(path)?.field ?? path);
}

function getPath(target: unknown, path: string): unknown {
  let value = target;
  for (const part of path.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
  return value;
}

/** Sets a dotted path in a plain object, creating the nested objects on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1) ?? path] = value;
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
        groups.set(path, Object.keys(nested));
        walk(nested, `${path}.`);
        continue;
      }
      const info = leafInfo.get(schema);
      if (info?.path !== path) {
        throw new Error(
          `config schema: ${path} was declared as ${info ? `setting('${info.path}')` : 'no setting'}`,
        );
      }
      leaves.set(path, { path, schema, info });
    }
  };
  walk(configSchema.shape, '');
  // The table and the schema list the same settings in the same order; anything else is a bug.
  const declared = [...leaves.keys()].join(', ');
  const tabled = SETTING_ENTRIES.map(([path]) => path).join(', ');
  if (declared !== tabled) {
    throw new Error(`config schema and settings table differ:\n  schema: ${declared}\n  table:  ${tabled}`);
  }
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
