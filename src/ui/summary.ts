import type { Io } from '../commands/context.ts';
import { formatDuration } from '../core/duration.ts';
import type { PushSummary } from '../core/events.ts';

export interface RunSummary {
  batchId: string;
  status: string;
  exitCode: number;
  input: string;
  output: string | null;
  format: string;
  items: { total: number; succeeded: number; failed: number; pending: number; skipped: number };
  cards: number;
  /** Finished items whose answers made no card (see the pipeline's cards section). */
  itemsWithoutCards: number;
  /** Present when the cards were pushed to a running Anki. */
  ankiConnect?: PushSummary;
  requests: number;
  /** Requests in flight: at the end and at most, and whether --concurrency pinned them. */
  concurrency: { final: number; peak: number; pinned: boolean };
  cacheHits: number;
  retries: number;
  tokens: { prompt: number; completion: number; total: number };
  costUsd: number | null;
  /**
   * process --batch-api: submissions still with the provider, request lines submitted by this run,
   * and what the batch's tokens would have cost as ordinary requests (costUsd is at the discount).
   */
  batchApi?: { out: number; submittedLines: number; discount: number; syncCostUsd: number | null };
  durationMs: number;
  log: string;
  /** Peak resident memory of this process, in MiB. */
  peakRssMb: number;
  /** `item`: the row's position in the input, the first row being 1. */
  failures: { item: number; term: string; errorKind: string; message: string }[];
}

/**
 * Column widths for a two-column (name, value) table that fits a terminal `columns` wide: long
 * values (paths, the log file) wrap inside their cell instead of breaking every line of the
 * table. Without a terminal (cron mail, pipes) nothing is wrapped.
 */
export function keyValueWidths(columns: number | undefined): {
  colWidths?: number[];
  wordWrap?: boolean;
  wrapOnWordBoundary?: boolean;
} {
  if (!columns || columns < 40) return {};
  const key = 16;
  return { colWidths: [key, columns - key - 3], wordWrap: true, wrapOnWordBoundary: false };
}

/** The end-of-run table on stderr, for people. Machine readers use --json instead. */
export async function printSummary(io: Io, s: RunSummary): Promise<void> {
  const [{ default: Table }, { Chalk }] = await Promise.all([import('cli-table3'), import('chalk')]);
  const chalk = new Chalk({ level: io.color ? 1 : 0 });
  const table = new Table({
    style: { head: [], border: [] },
    // One rule around the whole table, none between rows: compact in a terminal and in cron mail.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    ...keyValueWidths(io.columns),
  });
  // Items finished by this run (not those a previous run had already done).
  const processed = s.items.total - s.items.pending - s.items.skipped;
  const rate = s.durationMs > 0 ? Math.max(0, processed) / (s.durationMs / 1000) : 0;
  const statusText =
    s.exitCode === 0
      ? chalk.green(s.status)
      : s.exitCode === 1
        ? chalk.yellow(s.status)
        : chalk.red(s.status);
  table.push(
    { batch: s.batchId },
    { status: statusText },
    {
      items: `${s.items.total} total · ${s.items.succeeded} ok · ${s.items.failed} failed · ${s.items.pending} left${s.items.skipped ? ` · ${s.items.skipped} done before` : ''}`,
    },
    { cards: String(s.cards) },
    { requests: `${s.requests} (${s.retries} retries, ${s.cacheHits} cache hits)` },
    // Through the batch API nothing is in flight: the provider holds the requests.
    ...(s.batchApi
      ? []
      : [
          {
            'in flight': s.concurrency.pinned
              ? `${s.concurrency.final} (--concurrency)`
              : `up to ${s.concurrency.peak} (steered to the rate limit)`,
          },
        ]),
    { 'tokens (batch)': `${s.tokens.total} (${s.tokens.prompt} in, ${s.tokens.completion} out)` },
    {
      'cost (batch)':
        s.costUsd === null
          ? 'unknown model price'
          : `~$${s.costUsd.toFixed(4)}${
              s.batchApi?.syncCostUsd != null
                ? ` through the batch API (~$${s.batchApi.syncCostUsd.toFixed(4)} as ordinary requests)`
                : ''
            }`,
    },
    ...(s.batchApi
      ? [
          {
            'batch API': `${s.batchApi.submittedLines} request(s) submitted by this run; ${s.batchApi.out} submission(s) with the provider`,
          },
        ]
      : []),
    { time: `${formatDuration(s.durationMs)} (${rate.toFixed(1)} items/s)` },
    {
      output:
        s.output ??
        (s.ankiConnect
          ? '(none: sent to Anki)'
          : s.status === 'done' || s.status === 'failed'
            ? '(none)'
            : '(not written: batch unfinished)'),
    },
    ...(s.ankiConnect
      ? [
          {
            anki: `${s.ankiConnect.added} added, ${s.ankiConnect.duplicates} already there, ${s.ankiConnect.repeated} repeated, ${s.ankiConnect.failed} refused (${s.ankiConnect.url})`,
          },
        ]
      : []),
    { log: s.log },
  );
  io.err(`${table.toString()}\n`);
  if (s.failures.length) {
    io.err(chalk.yellow(`${s.items.failed} item(s) failed:\n`));
    for (const f of s.failures.slice(0, 10)) {
      io.err(`  item ${f.item} "${f.term}": ${f.errorKind}: ${f.message}\n`);
    }
    if (s.items.failed > 10) {
      io.err(`  ... and ${s.items.failed - 10} more (flashcards batches show ${s.batchId})\n`);
    }
    const hint = retryFailedHint(s);
    if (hint) io.err(`hint: ${hint}\n`);
  }
}

/** Failures a provider's bad moment caused (not the item): worth asking again with --retry-failed. */
const transientKinds = new Set(['server', 'timeout', 'network', 'rate_limit']);

/** What to run when items failed for reasons that may pass; undefined when none did. */
export function retryFailedHint(s: Pick<RunSummary, 'failures' | 'items'>): string | undefined {
  const transient = s.failures.filter((f) => transientKinds.has(f.errorKind)).length;
  if (transient === 0) return undefined;
  return `${transient === s.failures.length ? 'they' : `${transient} of them`} failed on the provider's side (${[
    ...new Set(s.failures.filter((f) => transientKinds.has(f.errorKind)).map((f) => f.errorKind)),
  ].join(', ')}): run the same command again with --retry-failed to ask for them again`;
}
