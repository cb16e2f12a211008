export interface ProcessOptions {
  /** A word list path or '-' for stdin; undefined only with `batch` (a named batch is not read again). */
  input: string | undefined;
  output?: string | undefined;
  /** Where the cards go: a file (default), or a running Anki through AnkiConnect. */
  to?: 'file' | 'anki-connect' | undefined;
  /** Config overrides from flags, keyed by config path (see config/load.ts). */
  flags: Record<string, unknown>;
  json: boolean;
  progress: boolean;
  quiet: boolean;
  newBatch: boolean;
  batch?: string | undefined;
  retryFailed: boolean;
  lock: boolean;
  refresh: boolean;
  /**
   * --batch-api: submit to the provider's batch API and collect what it finished; `wait` polls
   * until done instead of exiting 75, `fallback` sends jobs it failed --max-attempts times as
   * ordinary requests.
   */
  batchApi?: { wait: boolean; fallback: 'none' | 'sync' } | undefined;
  /** Graceful stop: no new work (first signal, --max-duration). */
  stopSignal: AbortSignal;
  /** Hard stop: abort in-flight requests (second signal, end of grace). */
  signal: AbortSignal;
  stdin?: NodeJS.ReadableStream;
  fetch?: typeof fetch;
  /** Registers a synchronous cleanup to run if the process must exit at once. */
  onHardExit?: (cleanup: () => void) => void;
}
