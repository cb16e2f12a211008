import type { RateLimitInfo } from './headers.ts';

/** Exit codes, as documented in the README. */
export const ExitCode = {
  ok: 0,
  itemsFailed: 1,
  usage: 2,
  aborted: 3,
  locked: 4,
  /** The shared store (Redis) lost its state: nothing more is paid for until a person looks. */
  storeLost: 5,
  /** EX_TEMPFAIL: work is with the provider's batch API; run the same command again later. */
  later: 75,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Kinds of failure that come from talking to a provider. */
export type ProviderErrorKind =
  | 'rate_limit'
  | 'server'
  | 'timeout'
  | 'network'
  | 'invalid_response'
  | 'auth'
  | 'quota'
  | 'bad_request'
  | 'circuit_open'
  | 'cancelled';

/** Kinds of failure that come from the user's side or the local machine. */
export type LocalErrorKind =
  | 'usage'
  | 'config'
  | 'input'
  | 'database'
  | 'locked'
  | 'deadline'
  | 'internal'
  /** The shared store (Redis) does not answer: a run waits for it up to --max-wait. */
  | 'store_unavailable'
  /** The shared store answers but lost its state (restarted empty). */
  | 'store_lost';

export type ErrorKind = ProviderErrorKind | LocalErrorKind;

const marker = Symbol.for('flashcards.error');

export interface FlashcardsErrorOptions {
  hint?: string | undefined;
  exitCode?: ExitCode;
  cause?: unknown;
}

const defaultExit: Record<ErrorKind, ExitCode> = {
  usage: ExitCode.usage,
  config: ExitCode.usage,
  input: ExitCode.usage,
  database: ExitCode.usage,
  locked: ExitCode.locked,
  store_unavailable: ExitCode.aborted,
  store_lost: ExitCode.storeLost,
  deadline: ExitCode.aborted,
  internal: ExitCode.aborted,
  rate_limit: ExitCode.itemsFailed,
  server: ExitCode.itemsFailed,
  timeout: ExitCode.itemsFailed,
  network: ExitCode.itemsFailed,
  invalid_response: ExitCode.itemsFailed,
  bad_request: ExitCode.itemsFailed,
  auth: ExitCode.aborted,
  quota: ExitCode.aborted,
  circuit_open: ExitCode.aborted,
  cancelled: ExitCode.interrupted,
};

/**
 * Every error that reaches the CLI. The CLI prints `error: <message>` and `hint: <hint>`
 * and exits with `exitCode`; nothing else calls process.exit.
 */
export class FlashcardsError extends Error {
  readonly [marker] = true;
  readonly kind: ErrorKind;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(kind: ErrorKind, message: string, options: FlashcardsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlashcardsError';
    this.kind = kind;
    this.exitCode = options.exitCode ?? defaultExit[kind];
    this.hint = options.hint;
  }
}

export interface ProviderErrorOptions extends FlashcardsErrorOptions {
  retryable: boolean;
  /** Earliest time to try again, from Retry-After / retry-after-ms, in ms from when the error was seen. */
  retryAfterMs?: number | undefined;
  status?: number | undefined;
  /** The rate-limit headers of the response that failed, when there was one (429s carry the pacing). */
  rateLimit?: RateLimitInfo | undefined;
}

/** A failed provider call, classified so retry, breaker and limiter can each decide what it means. */
export class ProviderError extends FlashcardsError {
  override readonly kind: ProviderErrorKind;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;
  readonly rateLimit: RateLimitInfo | undefined;

  constructor(kind: ProviderErrorKind, message: string, options: ProviderErrorOptions) {
    super(kind, message, options);
    this.name = 'ProviderError';
    this.kind = kind;
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
    this.rateLimit = options.rateLimit;
  }
}

/** Recognises our errors by a marker, so detection survives duplicate module copies. */
export function isFlashcardsError(e: unknown): e is FlashcardsError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[marker] === true;
}

export function isProviderError(e: unknown): e is ProviderError {
  return isFlashcardsError(e) && 'retryable' in e;
}

export function usageError(message: string, hint?: string): FlashcardsError {
  return new FlashcardsError('usage', message, { hint });
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The errno-style code (ECONNREFUSED, ENOTFOUND, ...) somewhere in an error's cause chain, looking
 * into the first error of an AggregateError (fetch's happy-eyeballs connect failures).
 */
export function errorCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; typeof cur === 'object' && cur !== null && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const first = cur instanceof AggregateError ? cur.errors[0] : undefined;
    cur = first ?? (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * A failure of the machine rather than of the program (a full disk, a read-only or failing file
 * system), from SQLite or from Node's fs, as a clear error; undefined for anything else. `where`
 * names the file or directory when the caller knows it. A full disk stops the run (exit 3); what
 * was committed before it filled up is kept and the next run resumes from there.
 */
export function storageError(e: unknown, where?: string): FlashcardsError | undefined {
  const code = errorCode(e);
  if (code === undefined) return undefined;
  const at = where ? `${where}: ` : '';
  const detail = errorMessage(e);
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') {
    return new FlashcardsError('database', `${at}the disk is full (${detail})`, {
      exitCode: ExitCode.aborted,
      hint: 'free some space and run again (finished work is kept), or set --home / FLASHCARDS_HOME to another disk',
      cause: e,
    });
  }
  if (code === 'EROFS' || code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_')) {
    return new FlashcardsError('database', `${at}the file system is read-only (${detail})`, {
      exitCode: ExitCode.aborted,
      hint: 'set --home / FLASHCARDS_HOME (and -o) to a writable directory',
      cause: e,
    });
  }
  if (code === 'EIO' || code.startsWith('SQLITE_IOERR')) {
    return new FlashcardsError('database', `${at}the disk failed a read or write (${detail})`, {
      exitCode: ExitCode.aborted,
      hint: 'check the disk (dmesg) and run again; finished work is kept',
      cause: e,
    });
  }
  return undefined;
}

/** Text on one line, runs of whitespace as one space: for quoting a server's answer in a message. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
