/**
 * A job's place and time: `item` is the row's position in the input as people count it (the
 * first row is 1), everywhere a run names an item; `durationMs` from the job's start to its
 * result, of which `requestMs` on the wire and `waitMs` waiting (limiter, breaker, backoff).
 */
export interface JobTiming {
  item: number;
  stage: string;
  durationMs: number;
  requestMs: number;
  waitMs: number;
}

/**
 * What a run reports. One stream feeds both the progress display and the JSON-lines log. Times
 * are durations in ms (`...Ms`) or ISO 8601 instants (`until`, `at`), never epoch numbers.
 */
export type RunEvent =
  | {
      type: 'run_started';
      batchId: string;
      input: string;
      total: number;
      remaining: number;
      resumed: boolean;
      model: string;
      baseUrl: string;
      /** Pinned by --concurrency, or 'steered'. */
      concurrency: number | 'steered';
    }
  | ({
      type: 'job_succeeded';
      batchId: string;
      attempts: number;
      cached: boolean;
      tokens: number;
      promptTokens: number;
      completionTokens: number;
    } & JobTiming)
  | ({
      type: 'job_failed';
      batchId: string;
      attempts: number;
      errorKind: string;
      message: string;
    } & JobTiming)
  | {
      type: 'retry_scheduled';
      batchId: string;
      item: number;
      stage: string;
      attempt: number;
      delayMs: number;
      errorKind: string;
      message: string;
    }
  | {
      type: 'rate_limited';
      batchId: string;
      waitMs: number;
      reason: string;
      /** pacing: the limiter spacing requests out (debug); paused: the provider said to stop (warn). */
      kind: 'pacing' | 'paused';
    }
  | {
      type: 'concurrency_changed';
      batchId: string;
      from: number;
      to: number;
      /** budget: the rate x latency target; throughput / latency: the climb without a known rate; errors; rate: this run's share. */
      reason: string;
      detail: string;
    }
  | { type: 'breaker_transition'; key: string; from: string; to: string; cause: string }
  /**
   * The run began to wait on an open circuit (once, not once a job), or got through again: `until`
   * when the next probe may go (null: isolated by hand), `waitedMs` how long the wait lasted.
   */
  | { type: 'breaker_wait'; batchId: string; phase: 'began'; state: string; until: string | null }
  | { type: 'breaker_wait'; batchId: string; phase: 'ended'; waitedMs: number }
  /**
   * The shared store (Redis) stopped answering, answered again, or was found without its state;
   * `awayMs` how long it was away. Claims and bookings wait for it; answers go to the outbox.
   */
  | {
      type: 'store_changed';
      batchId: string;
      change: 'away' | 'back' | 'lost';
      where: string;
      awayMs?: number;
    }
  /**
   * A step of the batch API (process --batch-api): a submission made, found again after a crash,
   * abandoned or refused; a remote batch polled; its answers collected.
   */
  | {
      type: 'batch_api';
      batchId: string;
      action: 'submitted' | 'found' | 'abandoned' | 'refused' | 'polled' | 'collected';
      stage: string;
      tag: string;
      remoteId?: string | undefined;
      lines?: number;
      state?: string;
      counts?: { total: number; completed: number; failed: number } | undefined;
      answered?: number;
      failed?: number;
      detail?: string;
    }
  | { type: 'output_written'; batchId: string; path: string; cards: number; format: string }
  | ({ type: 'anki_connect_pushed'; batchId: string } & PushSummary)
  | { type: 'run_stopping'; batchId: string; reason: string }
  | { type: 'run_finished'; batchId: string; status: string; exitCode: number; durationMs: number };

/** What a push to AnkiConnect did, as the log, the summary and --json report it. */
export interface PushSummary {
  url: string;
  cards: number;
  added: number;
  /** Already in Anki. */
  duplicates: number;
  /** Same first field as an earlier card of this push: Anki would call them duplicates. */
  repeated: number;
  failed: number;
}

export type EventLevel = 'debug' | 'info' | 'warn' | 'error';

export interface EventSink {
  emit(event: RunEvent): void;
}

export function levelOf(event: RunEvent): EventLevel {
  switch (event.type) {
    case 'job_failed':
      return 'error';
    case 'rate_limited':
      return event.kind === 'pacing' ? 'debug' : 'warn';
    case 'breaker_wait':
      return event.phase === 'began' ? 'warn' : 'info';
    case 'store_changed':
      return event.change === 'back' ? 'info' : event.change === 'away' ? 'warn' : 'error';
    case 'retry_scheduled':
    case 'run_stopping':
      return 'warn';
    case 'breaker_transition':
      return event.to === 'closed' ? 'info' : 'warn';
    case 'job_succeeded':
    case 'concurrency_changed':
      return 'debug';
    default:
      return 'info';
  }
}

/** Fans one event out to several sinks (progress, log file). */
export function fanOut(...sinks: EventSink[]): EventSink {
  return {
    emit(event) {
      for (const sink of sinks) sink.emit(event);
    },
  };
}
