import { readFile } from 'node:fs/promises';
import type { Clock } from '../core/clock.ts';
import { ExitCode, errorMessage, isFlashcardsError, storageError } from '../core/errors.ts';
import type { EventSink, RunEvent } from '../core/events.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import { formatTextfile, lastSuccessIn, type RunWork } from './textfile.ts';

export interface RunTextfileOptions {
  /** The file node_exporter's textfile collector reads (`--metrics-file`). */
  path: string;
  clock: Clock;
  /** When the run started, in ms since the epoch. */
  startedAt: number;
  model: string;
  pipeline: string;
  /** Tells the user once that the file could not be written; the run's outcome does not change. */
  warn: (message: string) => void;
}

/** How the run's end shows in the `status` label: a handful of values, by exit code. */
function statusOf(exitCode: number): string {
  switch (exitCode) {
    case ExitCode.ok:
      return 'done';
    case ExitCode.itemsFailed:
      return 'failed';
    case ExitCode.interrupted:
      return 'interrupted';
    default:
      return 'aborted';
  }
}

/** The exit code the CLI will give for an error that ends a run (the same mapping as cli.ts). */
export function exitCodeOfError(e: unknown): number {
  if (isFlashcardsError(e)) return e.exitCode;
  return storageError(e)?.exitCode ?? ExitCode.aborted;
}

/**
 * One run's Prometheus text file: a sink on the run's event stream (it counts the 429s the run
 * receives), and, once the run has ended however it ended, `write` puts the file in place
 * atomically. A failed run keeps the previous file's last success time. Like every sink, it never
 * changes the run: a file that cannot be written is one warning.
 */
export class RunTextfile implements EventSink {
  readonly #o: RunTextfileOptions;
  #rateLimited = 0;

  constructor(options: RunTextfileOptions) {
    this.#o = options;
  }

  emit(event: RunEvent): void {
    // Each 429 ends one attempt: retried (retry_scheduled) or the item's last (job_failed).
    if ((event.type === 'retry_scheduled' || event.type === 'job_failed') && event.errorKind === 'rate_limit')
      this.#rateLimited++;
  }

  /** Writes the file; `work` is what the run did, absent when it ended before its batch was open. */
  async write(exitCode: number, work?: Omit<RunWork, 'rateLimited'>): Promise<void> {
    const { path, clock } = this.#o;
    try {
      const endedAt = clock.now();
      const previous = await readFile(path, 'utf8').catch(() => '');
      const text = formatTextfile({
        endedAt,
        durationMs: Math.max(0, endedAt - this.#o.startedAt),
        exitCode,
        status: statusOf(exitCode),
        model: this.#o.model,
        pipeline: this.#o.pipeline,
        lastSuccessAt: exitCode === ExitCode.ok ? endedAt : lastSuccessIn(previous),
        work: work && { ...work, rateLimited: this.#rateLimited },
      });
      await writeFileAtomic(path, once(text));
    } catch (e) {
      this.#o.warn(`warning: cannot write the metrics file ${path}: ${errorMessage(e)}\n`);
    }
  }
}

async function* once(text: string): AsyncIterable<string> {
  yield text;
}
