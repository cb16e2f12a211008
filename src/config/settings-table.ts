import { OUTPUT_FORMATS } from '../output/types.ts';
import { PROVIDERS } from './providers.ts';

/**
 * Every setting in one table: its config-file path, description, default, environment variable,
 * command-line flag and Settings field. The commander options, `flagName()`, the environment
 * layer, the flag-to-path mapping, the defaults shown in --help and the zod schema's defaults
 * and descriptions (config/schema.ts) are all generated from it.
 *
 * Plain data on purpose: cli.ts loads it at start-up, and zod must stay unloaded until a command
 * actually loads settings (`flashcards --version` loads almost nothing). A new setting is one
 * entry here plus its validator in config/schema.ts (and its field in the Settings type).
 */

/** A command-line flag of a setting. Every setting flag is on `process`. */
export interface FlagSpec {
  /** As commander takes it: '--concurrency <n>', '--no-cache'. */
  flags: string;
  /** The --help line, without the default (which --help adds from the table). */
  help: string;
  /** What --help says the default is when the table's own default would mislead ("the pipeline's"). */
  defaultHelp?: string;
  /** Values commander itself checks, before any setting is loaded. */
  choices?: readonly string[];
  /** Values shell completion offers; the config loader checks them (with its own message). */
  complete?: readonly string[];
  /** Also on every command that resolves the provider: breaker isolate|close, config init|show, doctor. */
  provider?: true;
  /** A global option (before or after the command name, on every command), declared by cli.ts. */
  global?: true;
}

export type SettingDefault = string | number | boolean | readonly string[] | Readonly<Record<string, never>>;

export interface SettingSpec {
  /** What the key in `.flashcardrc` means. */
  description: string;
  /** Default in config-file form ("60s"); no default means the setting is unset unless given. */
  default?: SettingDefault;
  /** The FLASHCARDS_* variable that sets it (the API key's variables are resolved separately). */
  env?: `FLASHCARDS_${string}`;
  flag?: FlagSpec;
  /** The Settings field when it is not the config path (durations become ...Ms fields). */
  field?: string;
}

/** Keyed by config path ('limiter.rpm'), in the order of the schema, `config show` and --help. */
export const SETTINGS = {
  provider: {
    description: 'Provider preset; sets the default baseUrl, model and API key variable',
    default: 'openrouter',
    env: 'FLASHCARDS_PROVIDER',
    flag: {
      flags: '--provider <name>',
      help: `provider preset: ${PROVIDERS.join(', ')}`,
      complete: PROVIDERS,
      provider: true,
    },
  },
  baseUrl: {
    description: 'OpenAI-compatible API base URL (default from the provider)',
    default: 'https://openrouter.ai/api/v1',
    env: 'FLASHCARDS_BASE_URL',
    flag: {
      flags: '--base-url <url>',
      help: 'OpenAI-compatible API base URL',
      defaultHelp: "the provider preset's",
      provider: true,
    },
  },
  model: {
    description: 'Model name sent to the API (default from the provider)',
    default: 'openai/gpt-4o-mini',
    env: 'FLASHCARDS_MODEL',
    flag: {
      flags: '--model <id>',
      help: 'model id, e.g. openai/gpt-4o-mini',
      defaultHelp: "the provider preset's",
      provider: true,
    },
  },
  apiKey: {
    // Never a flag: a key on the command line ends up in shell history and `ps` output.
    description:
      'API key; better kept out of files: set FLASHCARDS_API_KEY or the provider variable (e.g. OPENROUTER_API_KEY)',
  },
  sourceLanguage: {
    description: 'Language of the words in your list',
    default: 'Korean',
    env: 'FLASHCARDS_SOURCE_LANGUAGE',
    flag: { flags: '--source-language <lang>', help: 'language of the terms' },
  },
  targetLanguage: {
    description: 'Language the cards explain them in',
    default: 'English',
    env: 'FLASHCARDS_TARGET_LANGUAGE',
    flag: { flags: '--target-language <lang>', help: "learner's language" },
  },
  pipeline: {
    description: 'Built-in pipeline (vocabulary, cloze, topics) or the path of a pipeline file (.yaml/.json)',
    default: 'vocabulary',
    env: 'FLASHCARDS_PIPELINE',
    flag: {
      flags: '--pipeline <name|file>',
      help: 'built-in pipeline (vocabulary, cloze, topics) or a pipeline file',
    },
  },
  deck: {
    description: "Anki deck the cards go into (default: the pipeline's)",
    default: 'Korean Vocabulary',
    env: 'FLASHCARDS_DECK',
    flag: { flags: '--deck <name>', help: 'Anki deck name', defaultHelp: "the pipeline's" },
  },
  noteType: {
    description: "Anki note type (default: the pipeline's)",
    default: 'Basic',
    env: 'FLASHCARDS_NOTE_TYPE',
    flag: { flags: '--note-type <name>', help: 'Anki note type', defaultHelp: "the pipeline's" },
  },
  tags: {
    description: 'Tags added to every card (comma-separated in env/flags)',
    default: ['flashcards'],
    env: 'FLASHCARDS_TAGS',
    flag: { flags: '--tags <list>', help: 'tags added to every card, comma-separated' },
  },
  fields: {
    description: 'Columns/fields to write, in order: card fields, term, tags (comma-separated); unset = all',
    env: 'FLASHCARDS_FIELDS',
    flag: { flags: '--fields <list>', help: 'fields/columns to write, in order, e.g. Front,Back,tags' },
  },
  format: {
    description: 'Output format: anki, csv, jsonl, json or apkg',
    default: 'anki',
    env: 'FLASHCARDS_FORMAT',
    flag: {
      flags: '--format <format>',
      help: 'output format',
      defaultHelp: 'from the -o extension, else anki',
      choices: OUTPUT_FORMATS,
    },
  },
  ankiConnectUrl: {
    description: 'AnkiConnect address used by --to anki-connect',
    default: 'http://127.0.0.1:8765',
    env: 'FLASHCARDS_ANKI_CONNECT_URL',
    flag: { flags: '--anki-url <url>', help: 'AnkiConnect address' },
  },
  concurrency: {
    description:
      'Requests in flight at once, pinned; unset = steered to the rate limit (rate x latency) up to maxConcurrency',
    env: 'FLASHCARDS_CONCURRENCY',
    flag: {
      flags: '--concurrency <n>',
      help: 'pin the requests in flight at once',
      defaultHelp: 'steered to the rate limit',
    },
  },
  maxConcurrency: {
    description: 'Most requests in flight when the concurrency is steered (no --concurrency)',
    default: 256,
    env: 'FLASHCARDS_MAX_CONCURRENCY',
    flag: { flags: '--max-concurrency <n>', help: 'most requests in flight when not pinned' },
  },
  timeout: {
    description: 'Timeout for one API request',
    default: '60s',
    env: 'FLASHCARDS_TIMEOUT',
    flag: { flags: '--timeout <duration>', help: 'per-request timeout, e.g. 30s' },
    field: 'timeoutMs',
  },
  maxTokens: {
    description: 'max_tokens for each completion',
    default: 1500,
    env: 'FLASHCARDS_MAX_TOKENS',
  },
  temperature: {
    description: 'Sampling temperature',
    default: 0.3,
    env: 'FLASHCARDS_TEMPERATURE',
  },
  maxDuration: {
    description: 'Deadline for a whole run (e.g. 25m); unset = no deadline',
    env: 'FLASHCARDS_MAX_DURATION',
    flag: { flags: '--max-duration <duration>', help: 'stop cleanly after this long, e.g. 25m (for cron)' },
    field: 'maxDurationMs',
  },
  'limiter.rpm': {
    description:
      "Requests per minute allowed by your plan; unset = learned from the provider's headers and 429s",
    env: 'FLASHCARDS_RPM',
    flag: {
      flags: '--rpm <n>',
      help: 'requests per minute allowed by your provider',
      defaultHelp: "learned from the provider's headers and 429s",
    },
  },
  'limiter.tpm': {
    description:
      "Tokens per minute allowed by your plan; unset = learned from the provider's headers and 429s",
    env: 'FLASHCARDS_TPM',
    flag: {
      flags: '--tpm <n>',
      help: 'tokens per minute allowed by your provider',
      defaultHelp: "learned from the provider's headers and 429s",
    },
  },
  'limiter.burstSeconds': {
    description: 'How many seconds of rate may be spent at once',
    default: 1,
    env: 'FLASHCARDS_BURST_SECONDS',
    flag: { flags: '--burst-seconds <s>', help: 'rate limiter burst, in seconds of budget' },
  },
  'limiter.shards': {
    description: 'Limiter shards that spread write contention between processes',
    default: 'auto',
    env: 'FLASHCARDS_SHARDS',
    flag: { flags: '--shards <n>', help: 'rate limiter shards' },
  },
  'cache.enabled': {
    description: 'Reuse earlier responses for identical requests',
    default: true,
    env: 'FLASHCARDS_CACHE',
    flag: { flags: '--no-cache', help: 'neither read nor write the response cache' },
  },
  'cache.ttl': {
    description: 'How long a cached response stays fresh; 0 = forever',
    default: '30d',
    env: 'FLASHCARDS_CACHE_TTL',
    flag: { flags: '--cache-ttl <duration>', help: 'how long cached responses live, e.g. 30d (0 = forever)' },
    field: 'cache.ttlMs',
  },
  'cache.jitter': {
    description: 'Random spread of expiry times, as a fraction of ttl',
    default: 0.1,
  },
  'cache.compressThreshold': {
    description: 'Bodies of at least this many bytes are compressed',
    default: 1024,
    field: 'cache.compressThresholdBytes',
  },
  'cache.staleIfError': {
    description: 'Serve an expired response when the provider fails',
    default: false,
    env: 'FLASHCARDS_STALE_IF_ERROR',
    flag: {
      flags: '--stale-if-error',
      help: 'serve expired cache entries while the circuit breaker is open',
    },
  },
  'retry.maxAttempts': {
    description: 'Attempts per request, including the first',
    default: 6,
    env: 'FLASHCARDS_MAX_ATTEMPTS',
    flag: { flags: '--max-attempts <n>', help: 'attempts per request before an item fails' },
  },
  'retry.baseDelay': {
    description: 'First backoff delay',
    default: '1s',
    env: 'FLASHCARDS_RETRY_BASE_DELAY',
    field: 'retry.baseDelayMs',
  },
  'retry.maxDelay': {
    description: 'Longest backoff delay',
    default: '30s',
    env: 'FLASHCARDS_RETRY_MAX_DELAY',
    field: 'retry.maxDelayMs',
  },
  'retry.window': {
    description:
      'A transient failure (5xx, timeout, reset) fails an item only once its attempts are spent and this long has passed since its first failure: a short outage near the end of a run fails nothing',
    default: '60s',
    env: 'FLASHCARDS_RETRY_WINDOW',
    flag: {
      flags: '--retry-window <duration>',
      help: 'keep retrying transient failures of an item at least this long',
    },
    field: 'retry.windowMs',
  },
  'breaker.samplingWindow': {
    description: 'Window over which the failure ratio is measured',
    default: '30s',
    field: 'breaker.samplingWindowMs',
  },
  'breaker.failureRatio': {
    description: 'Failure ratio that opens the breaker',
    default: 0.5,
  },
  'breaker.minThroughput': {
    description: 'Calls needed in the window before the breaker may open',
    default: 10,
  },
  'breaker.breakDuration': {
    description: 'First open period',
    default: '30s',
    field: 'breaker.breakDurationMs',
  },
  'breaker.maxBreakDuration': {
    description: 'Longest open period (it doubles while failures continue)',
    default: '5m',
    field: 'breaker.maxBreakDurationMs',
  },
  'breaker.maxWait': {
    description: 'How long a run waits for an open breaker before giving up',
    default: '3m',
    env: 'FLASHCARDS_MAX_WAIT',
    flag: {
      flags: '--max-wait <duration>',
      help: 'longest wait for an open circuit breaker before stopping',
    },
    field: 'breaker.maxWaitMs',
  },
  progressInterval: {
    description: 'Period of the progress line when stderr is not a terminal',
    default: '10s',
    env: 'FLASHCARDS_PROGRESS_INTERVAL',
    field: 'progressIntervalMs',
  },
  'logs.keep': {
    description: 'Run logs older than this are deleted when a run starts (0 = keep them all)',
    default: '14d',
    env: 'FLASHCARDS_LOGS_KEEP',
    field: 'logs.keepMs',
  },
  'logs.keepFiles': {
    description:
      'At most this many run logs are kept, the newest (a cron run every 30 minutes writes 48 a day)',
    default: 500,
    env: 'FLASHCARDS_LOGS_KEEP_FILES',
  },
  'batchApi.available': {
    description:
      'The provider has the OpenAI batch endpoints (/files, /batches): for a custom provider; openai and groq have them',
    default: false,
    env: 'FLASHCARDS_BATCH_API_AVAILABLE',
  },
  'batchApi.discount': {
    description: 'Share of the price a batch-API request saves (0.5: half price), for costs and estimates',
    default: 0.5,
    env: 'FLASHCARDS_BATCH_API_DISCOUNT',
  },
  'batchApi.maxRequests': {
    description: 'Request lines per submitted file at most (OpenAI: 50,000)',
    default: 50_000,
    env: 'FLASHCARDS_BATCH_API_MAX_REQUESTS',
  },
  'batchApi.maxBytes': {
    description: 'Bytes per submitted file at most (OpenAI: 200 MB)',
    default: 200 * 1024 * 1024,
    env: 'FLASHCARDS_BATCH_API_MAX_BYTES',
  },
  store: {
    description:
      'Shared state for several machines: a Redis URL (redis://, rediss://, redis+unix://, redis-cluster://); unset: state.db and cache.db in the data directory',
    env: 'FLASHCARDS_STORE',
    flag: {
      flags: '--store <url>',
      help: 'shared state in Redis, e.g. redis://host:6379/0 (several machines share batches, limits, breaker, cache)',
      defaultHelp: 'state.db in the data directory',
      global: true,
    },
  },
  metricsFile: {
    description:
      "Where each process run writes its metrics for Prometheus node_exporter's textfile collector (replaced atomically); unset: no file",
    env: 'FLASHCARDS_METRICS_FILE',
    flag: {
      flags: '--metrics-file <path>',
      help: "write the run's metrics for node_exporter's textfile collector, e.g. /var/lib/node_exporter/textfile/flashcards.prom",
    },
  },
  prices: {
    description: 'Extra model prices (USD per 1M tokens), merged over the built-in ones, for cost estimates',
    default: {},
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingPath = keyof typeof SETTINGS;

/** The groups of nested keys in `.flashcardrc`, with what each is about. */
export const SETTING_GROUPS = {
  limiter: 'Client-side rate limits, shared by every process using the same provider and key',
  cache: 'Response cache (cache.db)',
  retry: 'Retries of failed requests (full jitter, Retry-After respected)',
  breaker: 'Circuit breaker, shared by every process using the same provider and key',
  logs: 'Run logs (one JSON-lines file per run, in logs/ of the data directory)',
  batchApi: "Providers' batch APIs (process --batch-api): half price, answers within 24 h",
} as const;

/** Every setting in table order, as plain specs. */
export const SETTING_ENTRIES: readonly (readonly [SettingPath, SettingSpec])[] = Object.entries(SETTINGS) as [
  SettingPath,
  SettingSpec,
][];

/** The spec of a config path; undefined for a path that is not a setting. */
export function settingSpec(path: string): SettingSpec | undefined {
  return Object.hasOwn(SETTINGS, path) ? (SETTINGS as Record<string, SettingSpec>)[path] : undefined;
}

/** Environment variable -> config path. The API key's variables are resolved separately (apiKeyVars). */
export const ENV_VARS: Readonly<Record<string, string>> = Object.fromEntries(
  SETTING_ENTRIES.flatMap(([path, spec]) => (spec.env ? [[spec.env, path]] : [])),
);

/** FLASHCARDS_* variables that are not settings but are still ours (no "unknown variable" warning). */
export const OTHER_ENV_VARS = [
  'FLASHCARDS_API_KEY',
  'FLASHCARDS_HOME',
  'FLASHCARDS_CONFIG',
  'FLASHCARDS_REDIS_PASSWORD',
];

/** The long flag of a FlagSpec: '--rpm <n>' -> '--rpm'. */
export function longFlag(flag: FlagSpec): string {
  return flag.flags.split(/[ ,<[]/)[0] ?? flag.flags;
}

/** The command-line flag of a config path ('limiter.rpm' -> '--rpm'); undefined when it has none. */
export function flagName(path: string): string | undefined {
  const flag = settingSpec(path)?.flag;
  return flag ? longFlag(flag) : undefined;
}

/** The default as --help shows it: "60s", "flashcards", "the pipeline's"; undefined to say nothing. */
export function defaultHelp(spec: SettingSpec): string | undefined {
  if (spec.flag?.defaultHelp !== undefined) return spec.flag.defaultHelp;
  const value = spec.default;
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (Array.isArray(value)) return value.join(',');
  // Booleans are the flag itself (--no-cache, --stale-if-error); objects have no short form.
  return undefined;
}
