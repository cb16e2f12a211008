import { relative } from 'node:path';

export type SourceKind = 'default' | 'file' | 'env' | 'flag' | 'preset';

/** Where a value came from: {kind:'file', detail:'/x/.flashcardrc'}, {kind:'env', detail:'FLASHCARDS_MODEL'}. */
export interface ValueSource {
  kind: SourceKind;
  detail: string;
}

/** Environment variable -> config path. FLASHCARDS_API_KEY is resolved separately (see apiKeyVars). */
export const ENV_VARS: Readonly<Record<string, string>> = {
  FLASHCARDS_PROVIDER: 'provider',
  FLASHCARDS_BASE_URL: 'baseUrl',
  FLASHCARDS_MODEL: 'model',
  FLASHCARDS_SOURCE_LANGUAGE: 'sourceLanguage',
  FLASHCARDS_TARGET_LANGUAGE: 'targetLanguage',
  FLASHCARDS_PIPELINE: 'pipeline',
  FLASHCARDS_DECK: 'deck',
  FLASHCARDS_NOTE_TYPE: 'noteType',
  FLASHCARDS_TAGS: 'tags',
  FLASHCARDS_FORMAT: 'format',
  FLASHCARDS_FIELDS: 'fields',
  FLASHCARDS_ANKI_CONNECT_URL: 'ankiConnectUrl',
  FLASHCARDS_CONCURRENCY: 'concurrency',
  FLASHCARDS_TIMEOUT: 'timeout',
  FLASHCARDS_MAX_TOKENS: 'maxTokens',
  FLASHCARDS_TEMPERATURE: 'temperature',
  FLASHCARDS_MAX_DURATION: 'maxDuration',
  FLASHCARDS_RPM: 'limiter.rpm',
  FLASHCARDS_TPM: 'limiter.tpm',
  FLASHCARDS_BURST_SECONDS: 'limiter.burstSeconds',
  FLASHCARDS_SHARDS: 'limiter.shards',
  FLASHCARDS_CACHE: 'cache.enabled',
  FLASHCARDS_CACHE_TTL: 'cache.ttl',
  FLASHCARDS_STALE_IF_ERROR: 'cache.staleIfError',
  FLASHCARDS_MAX_ATTEMPTS: 'retry.maxAttempts',
  FLASHCARDS_RETRY_BASE_DELAY: 'retry.baseDelay',
  FLASHCARDS_RETRY_MAX_DELAY: 'retry.maxDelay',
  FLASHCARDS_MAX_WAIT: 'breaker.maxWait',
  FLASHCARDS_PROGRESS_INTERVAL: 'progressInterval',
};

/** FLASHCARDS_* variables that are not settings but are still ours (no "unknown variable" warning). */
export const OTHER_ENV_VARS = ['FLASHCARDS_API_KEY', 'FLASHCARDS_HOME', 'FLASHCARDS_CONFIG'];

/** Flags whose name is not simply the kebab-case of the config path. */
const flagNames: Record<string, string> = {
  apiKey: '--api-key',
  'limiter.rpm': '--rpm',
  'limiter.tpm': '--tpm',
  'limiter.burstSeconds': '--burst-seconds',
  'limiter.shards': '--shards',
  'cache.enabled': '--no-cache',
  'cache.ttl': '--cache-ttl',
  'cache.staleIfError': '--stale-if-error',
  'retry.maxAttempts': '--max-attempts',
  'breaker.maxWait': '--max-wait',
  ankiConnectUrl: '--anki-url',
};

/** The command-line flag for a config path: 'baseUrl' -> '--base-url', 'limiter.rpm' -> '--rpm'. */
export function flagName(path: string): string {
  return flagNames[path] ?? `--${path.replaceAll('.', '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** A file path as people want to read it in messages: relative to cwd when inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel === '' || rel.startsWith('..') || rel.startsWith('/') ? file : rel;
}

/** One-line description of a source: "default", "preset groq", "env FLASHCARDS_MODEL", "--model", a path. */
export function describeSource(source: ValueSource): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'preset':
      return `preset ${source.detail}`;
    case 'env':
      return `env ${source.detail}`;
    case 'flag':
    case 'file':
      return source.detail;
  }
}
