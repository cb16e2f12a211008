import type { Io } from '../commands/context.ts';
import { formatDuration } from '../core/duration.ts';
import type { EventSink, RunEvent } from '../core/events.ts';

export type ProgressMode = 'spinner' | 'lines' | 'off';

export interface ProgressOptions {
  io: Io;
  mode: ProgressMode;
  now: () => number;
  /** Period of the plain progress line when there is no TTY. */
  intervalMs: number;
  /** The stage whose success completes an item. */
  lastStage: string;
  /** How long the run waits for an open circuit (--max-wait), for the notice when one opens. */
  maxWaitMs?: number | undefined;
}

interface ProgressState {
  total: number;
  alreadyDone: number;
  itemsDone: number;
  itemsFailed: number;
  cacheHits: number;
  retries: number;
  breaker: string;
  ratePerSec: number;
  etaMs: number | undefined;
  /** Requests allowed in flight now (pinned, or as the controller last set it). */
  concurrency: number | undefined;
}

/**
 * A spinner needs a terminal that knows its width: one that reports 0 columns (a pseudo-terminal
 * nobody sized, as `script` or some CI runners make) would have ora clear lines forever.
 */
export function progressMode(
  io: Pick<Io, 'isTTY' | 'columns'>,
  o: { quiet: boolean; json: boolean; progress: boolean },
): ProgressMode {
  if (o.quiet || o.json || !o.progress) return 'off';
  return io.isTTY && (io.columns ?? 0) > 0 ? 'spinner' : 'lines';
}

export interface Progress extends EventSink {
  stop(): void;
}

/**
 * Turns run events into a live progress line: an ora spinner in a terminal, or one plain line
 * every few seconds on stderr for cron and pipes. It only reads events; it never drives the run.
 */
export async function createProgress(options: ProgressOptions): Promise<Progress> {
  const { io, now } = options;
  const state: ProgressState = {
    total: 0,
    alreadyDone: 0,
    itemsDone: 0,
    itemsFailed: 0,
    cacheHits: 0,
    retries: 0,
    breaker: 'closed',
    ratePerSec: 0,
    etaMs: undefined,
    concurrency: undefined,
  };
  let started = now();
  // Items finished in the last few seconds, for a rate that follows changes (rate limits, outages).
  const recent: number[] = [];
  const windowMs = 15_000;

  const refreshRate = (): void => {
    const t = now();
    while (recent.length && (recent[0] ?? 0) < t - windowMs) recent.shift();
    const span = Math.min(windowMs, Math.max(1, t - started));
    state.ratePerSec = (recent.length * 1000) / span;
    const left = state.total - state.alreadyDone - state.itemsDone - state.itemsFailed;
    state.etaMs = state.ratePerSec > 0 ? (left / state.ratePerSec) * 1000 : undefined;
  };

  const line = (): string => {
    refreshRate();
    const done = state.alreadyDone + state.itemsDone;
    const parts = [
      `${done}/${state.total} items`,
      `${state.ratePerSec.toFixed(1)}/s`,
      `cache ${state.cacheHits}`,
      ...(state.concurrency === undefined ? [] : [`in flight <= ${state.concurrency}`]),
      `retries ${state.retries}`,
    ];
    if (state.itemsFailed) parts.push(`failed ${state.itemsFailed}`);
    if (state.breaker !== 'closed') parts.push(`breaker ${state.breaker}`);
    parts.push(`ETA ${state.etaMs === undefined ? '?' : formatDuration(state.etaMs)}`);
    // Printable ASCII only (see the spinner below).
    return parts.join(' | ');
  };

  let render: () => void = () => {};
  let stop: () => void = () => {};
  // A line of its own for what a person should know at once (the provider went down, came back).
  let notice: (text: string) => void = () => {};
  if (options.mode === 'spinner') {
    const { default: ora } = await import('ora');
    const spinner = ora({
      text: 'starting',
      // ASCII frames and an ASCII line: ora measures every frame with string-width, which takes a
      // fast path for printable ASCII and otherwise segments graphemes with Intl.Segmenter and
      // Unicode-property regexes, ~4 MiB more at peak (a braille spinner, a '·' separator).
      spinner: 'line',
      stream: process.stderr,
      isEnabled: true,
      discardStdin: false,
    }).start();
    let last = 0;
    render = () => {
      const t = now();
      if (t - last < 100) return;
      last = t;
      spinner.text = line();
    };
    const timer = setInterval(() => {
      spinner.text = line();
    }, 500);
    timer.unref();
    stop = () => {
      clearInterval(timer);
      spinner.stop();
    };
    notice = (text) => {
      spinner.clear();
      io.err(`${text}\n`);
      spinner.render();
    };
  } else if (options.mode === 'lines') {
    const timer = setInterval(() => io.err(`progress: ${line()}\n`), options.intervalMs);
    timer.unref();
    stop = () => clearInterval(timer);
    notice = (text) => io.err(`${text}\n`);
  }

  const onEvent = (event: RunEvent): void => {
    switch (event.type) {
      case 'run_started':
        started = now();
        state.total = event.total;
        state.alreadyDone = event.total - event.remaining;
        if (typeof event.concurrency === 'number') state.concurrency = event.concurrency;
        break;
      case 'concurrency_changed':
        state.concurrency = event.to;
        break;
      case 'job_succeeded':
        if (event.cached) state.cacheHits++;
        if (event.stage === options.lastStage) {
          state.itemsDone++;
          recent.push(now());
        }
        break;
      case 'job_failed':
        state.itemsFailed++;
        recent.push(now());
        break;
      case 'retry_scheduled':
        state.retries++;
        break;
      case 'breaker_transition':
        if (event.from === 'closed' && event.to !== 'closed') {
          const giveUp =
            options.maxWaitMs === undefined
              ? ''
              : `; the run gives up after ${formatDuration(options.maxWaitMs)} of this (--max-wait)`;
          notice(`warning: requests paused, the provider is failing: ${event.cause}${giveUp}`);
        } else if (event.to === 'closed' && state.breaker !== 'closed') {
          notice('provider answering again: requests resumed');
        }
        state.breaker = event.to;
        break;
      case 'breaker_wait':
        state.breaker = event.state;
        break;
      default:
        break;
    }
    render();
  };

  return {
    emit: onEvent,
    stop,
  };
}
