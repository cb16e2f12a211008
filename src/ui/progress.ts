import type { Io } from '../commands/context.ts';
import type { Clock } from '../core/clock.ts';
import { formatDuration } from '../core/duration.ts';
import type { EventSink, RunEvent } from '../core/events.ts';

export type ProgressMode = 'spinner' | 'lines' | 'off';

/** What the run knows now that no event says: polled for each progress line. */
export interface LiveFigures {
  /** Requests on the wire now, and the most the run lets out at once now. */
  inFlight: number;
  limit: number;
  /** The pace the limiter allows now, and whether the user told it or it was learned. */
  pace: { rpm: number | null; tpm: number | null; source: 'told' | 'learned' | 'none' };
  /** The whole batch, every run on it included (several runs share a batch). */
  batch: { total: number; done: number; failed: number };
}

export interface ProgressOptions {
  io: Io;
  mode: ProgressMode;
  clock: Clock;
  /** Period of the plain progress line when there is no TTY. */
  intervalMs: number;
  /** The stage whose success completes an item. */
  lastStage: string;
  /** How long the run waits for an open circuit (--max-wait), for the notice when one opens. */
  maxWaitMs?: number | undefined;
  /** The figures no event carries; without them the line shows what the events say. */
  live?: (() => Promise<LiveFigures | undefined>) | undefined;
  /** What tokens cost at the model's price (USD), null when the price is unknown. */
  cost?: ((promptTokens: number, completionTokens: number) => number | null) | undefined;
}

/** What the events of this run have said so far. */
export interface ProgressState {
  total: number;
  alreadyDone: number;
  itemsDone: number;
  itemsFailed: number;
  cacheHits: number;
  retries: number;
  promptTokens: number;
  completionTokens: number;
  breaker: { state: string; until: number | null };
  /** Since when the shared store has not answered (ms); undefined while it answers. */
  storeAwaySince?: number | undefined;
  /** Items finished (by any run) per second lately, for the ETA. */
  ratePerSec: number;
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

function count(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 10_000) return `${Math.round(n / 1000)}k`;
  return String(n);
}

/**
 * One progress line: what a person watches a run for. Done and failed items of the whole batch,
 * requests in flight and the limit, the pace the limiter allows (told or learned), tokens and cost
 * so far, the breaker when it is not closed (with the time to its next probe), and the ETA.
 * Printable ASCII only (see the spinner in createProgress).
 */
export function progressLine(
  s: ProgressState,
  live: LiveFigures | undefined,
  nowMs: number,
  cost: number | null | undefined,
): string {
  const batch = live?.batch ?? {
    total: s.total,
    done: s.alreadyDone + s.itemsDone,
    failed: s.itemsFailed,
  };
  const parts = [`${batch.done}/${batch.total} items${batch.failed ? ` (${batch.failed} failed)` : ''}`];
  if (live) {
    parts.push(`${live.inFlight} in flight (up to ${live.limit})`);
    const { rpm, tpm, source } = live.pace;
    const pace = [
      rpm === null ? '' : `${Math.round(rpm)}/min`,
      tpm === null ? '' : `${count(Math.round(tpm))} tok/min`,
    ]
      .filter(Boolean)
      .join(', ');
    parts.push(pace ? `pace ${pace} (${source})` : 'pace: no limit known');
  }
  const tokens = s.promptTokens + s.completionTokens;
  parts.push(`${count(tokens)} tokens${cost === null || cost === undefined ? '' : `, ~$${cost.toFixed(2)}`}`);
  if (s.cacheHits) parts.push(`cache ${s.cacheHits}`);
  if (s.retries) parts.push(`retries ${s.retries}`);
  if (s.breaker.state !== 'closed') {
    const next =
      s.breaker.until === null
        ? s.breaker.state === 'isolated'
          ? ', until closed by hand'
          : ''
        : `, next probe in ${formatDuration(Math.max(0, s.breaker.until - nowMs))}`;
    parts.push(`breaker ${s.breaker.state}${next}`);
  }
  if (s.storeAwaySince !== undefined) {
    parts.push(`store not answering for ${formatDuration(Math.max(0, nowMs - s.storeAwaySince))}`);
  }
  const left = batch.total - batch.done - batch.failed;
  const eta = left <= 0 ? 0 : s.ratePerSec > 0 ? (left / s.ratePerSec) * 1000 : undefined;
  parts.push(`ETA ${eta === undefined ? '?' : formatDuration(eta)}`);
  return parts.join(' | ');
}

export interface Progress extends EventSink {
  stop(): void;
}

/** Items finished in the last this long make the rate the ETA divides by. */
const rateWindowMs = 15_000;

/**
 * Turns run events (and the live figures it polls) into a progress line: an ora spinner in a
 * terminal, or one plain line every few seconds on stderr for cron and pipes. It only reads; it
 * never drives the run. Timers run on the injected clock and never hold the process open.
 */
export async function createProgress(options: ProgressOptions): Promise<Progress> {
  const { io, clock } = options;
  const state: ProgressState = {
    total: 0,
    alreadyDone: 0,
    itemsDone: 0,
    itemsFailed: 0,
    cacheHits: 0,
    retries: 0,
    promptTokens: 0,
    completionTokens: 0,
    breaker: { state: 'closed', until: null },
    ratePerSec: 0,
  };
  let started = clock.now();
  let live: LiveFigures | undefined;
  let polling = false;
  // Finished counts (the batch's, with live figures; else this run's) over time, for the rate.
  const samples: { at: number; finished: number }[] = [];

  const poll = (): void => {
    if (!options.live || polling) return;
    polling = true;
    options
      .live()
      .then((figures) => {
        live = figures;
      })
      .catch(() => {
        // A figure that cannot be read now is read at the next line.
      })
      .finally(() => {
        polling = false;
      });
  };

  const line = (): string => {
    poll();
    const now = clock.now();
    const finished = live
      ? live.batch.done + live.batch.failed
      : state.alreadyDone + state.itemsDone + state.itemsFailed;
    samples.push({ at: now, finished });
    while (samples.length > 2 && (samples[0]?.at ?? now) < now - rateWindowMs) samples.shift();
    const first = samples[0];
    const span = first ? now - first.at : 0;
    state.ratePerSec =
      first && span >= 1000
        ? ((finished - first.finished) * 1000) / span
        : ((state.itemsDone + state.itemsFailed) * 1000) / Math.max(1, now - started);
    return progressLine(state, live, now, options.cost?.(state.promptTokens, state.completionTokens));
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
    let last = Number.NEGATIVE_INFINITY;
    render = () => {
      const t = clock.now();
      if (t - last < 100) return;
      last = t;
      spinner.text = line();
    };
    const cancel = clock.timer(
      500,
      () => {
        spinner.text = line();
      },
      { repeat: true },
    );
    stop = () => {
      cancel();
      spinner.stop();
    };
    notice = (text) => {
      spinner.clear();
      io.err(`${text}\n`);
      spinner.render();
    };
  } else if (options.mode === 'lines') {
    poll();
    const cancel = clock.timer(options.intervalMs, () => io.err(`progress: ${line()}\n`), { repeat: true });
    stop = cancel;
    notice = (text) => io.err(`${text}\n`);
  }

  const onEvent = (event: RunEvent): void => {
    switch (event.type) {
      case 'run_started':
        started = clock.now();
        state.total = event.total;
        state.alreadyDone = event.total - event.remaining;
        break;
      case 'job_succeeded':
        if (event.cached) state.cacheHits++;
        state.promptTokens += event.promptTokens;
        state.completionTokens += event.completionTokens;
        if (event.stage === options.lastStage) state.itemsDone++;
        break;
      case 'job_failed':
        state.itemsFailed++;
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
        } else if (event.to === 'closed' && state.breaker.state !== 'closed') {
          notice('provider answering again: requests resumed');
        }
        state.breaker = { state: event.to, until: event.to === 'closed' ? null : state.breaker.until };
        break;
      case 'breaker_wait':
        state.breaker =
          event.phase === 'began'
            ? { state: event.state, until: event.until === null ? null : Date.parse(event.until) }
            : { state: 'closed', until: null };
        break;
      case 'store_changed':
        state.storeAwaySince = event.change === 'away' ? clock.now() : undefined;
        break;
      default:
        break;
    }
    render();
  };

  return { emit: onEvent, stop };
}
