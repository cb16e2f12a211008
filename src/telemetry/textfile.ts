/**
 * The last `process` run as a Prometheus text file, for node_exporter's textfile collector
 * (`--metrics-file`): a cron job leaves no process to scrape, so it leaves a file behind instead.
 * Pure: figures in, exposition text out; the writer (textfile-writer.ts) gathers the figures and
 * replaces the file atomically.
 *
 * Every metric is a gauge describing the last run (not a counter: the file is rewritten by each
 * run, so nothing accumulates), named with its unit as Prometheus asks. Labels are low-cardinality
 * only: outcome, token type, and the model and pipeline on the info metric; never a batch id or a
 * term.
 */

export type BreakerStateName = 'closed' | 'half_open' | 'open' | 'isolated';

/** The breaker state as a number, the same encoding as the OpenTelemetry gauge `flashcards.breaker.state`. */
export const BREAKER_STATE_VALUES: Readonly<Record<BreakerStateName, number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
  isolated: 3,
};

/** What one run did, as far as it got: a run that failed before its batch was open has no `work`. */
export interface TextfileRun {
  /** When the run ended, in ms since the epoch. */
  endedAt: number;
  durationMs: number;
  exitCode: number;
  /** done, failed, aborted, interrupted, or error (the run ended on an error before its summary). */
  status: string;
  model: string;
  pipeline: string;
  /** When a run last succeeded (exit 0), in ms since the epoch: this one, or one read from the previous file. */
  lastSuccessAt: number | undefined;
  work?: RunWork | undefined;
}

export interface RunWork {
  /** The batch's items at the end of the run. */
  items: { done: number; failed: number; pending: number };
  requests: number;
  retries: number;
  /** Tokens the provider served during this run. */
  tokens: { input: number; output: number };
  /** USD at the model's price; null when the price is unknown (the metric is then left out). */
  costUsd: number | null;
  cacheHits: number;
  cacheMisses: number;
  /** 429 answers this run received. */
  rateLimited: number;
  /** The breaker's state when the run ended; undefined when it could not be read. */
  breakerState: BreakerStateName | undefined;
}

interface MetricSpec {
  name: string;
  help: string;
}

/** Every metric the file can hold, by role: the dashboard's test checks its queries against these names. */
export const TEXTFILE_METRICS = {
  info: {
    name: 'flashcards_last_run_info',
    help: 'Always 1; labels name the model, the pipeline and how the last process run ended.',
  },
  runTimestamp: {
    name: 'flashcards_last_run_timestamp_seconds',
    help: 'When the last process run ended, in seconds since the Unix epoch.',
  },
  successTimestamp: {
    name: 'flashcards_last_success_timestamp_seconds',
    help: 'When a process run last ended with exit code 0, in seconds since the Unix epoch.',
  },
  duration: {
    name: 'flashcards_last_run_duration_seconds',
    help: 'How long the last process run took, in seconds.',
  },
  exitCode: {
    name: 'flashcards_last_run_exit_code',
    help: 'Exit code of the last process run (0 ok, 1 items failed, 3 aborted, 4 locked, 130 interrupted).',
  },
  items: {
    name: 'flashcards_last_run_items',
    help: "Items of the last run's batch when the run ended, by outcome (done, failed, pending).",
  },
  requests: {
    name: 'flashcards_last_run_requests',
    help: 'HTTP requests the last run sent to the provider.',
  },
  retries: {
    name: 'flashcards_last_run_retries',
    help: 'Retries the last run scheduled after failed attempts.',
  },
  tokens: {
    name: 'flashcards_last_run_tokens',
    help: 'Tokens the provider served during the last run, by type (input, output).',
  },
  cost: {
    name: 'flashcards_last_run_cost_dollars',
    help: "What the last run's tokens cost at the model's price, in US dollars (absent when the price is unknown).",
  },
  cacheHitRatio: {
    name: 'flashcards_last_run_cache_hit_ratio',
    help: "Share of the last run's response cache lookups that were hits, 0 to 1 (absent without lookups).",
  },
  rateLimited: {
    name: 'flashcards_last_run_rate_limited_responses',
    help: 'HTTP 429 answers the last run received from the provider.',
  },
  breakerState: {
    name: 'flashcards_last_run_breaker_state',
    help: "The provider key's circuit breaker when the last run ended: 0 closed, 1 half-open, 2 open, 3 isolated.",
  },
} as const satisfies Record<string, MetricSpec>;

export const TEXTFILE_METRIC_NAMES: readonly string[] = Object.values(TEXTFILE_METRICS).map((m) => m.name);

/** A label value as the exposition format wants it: backslash, double quote and newline escaped. */
function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** A HELP text escaped as the exposition format wants it (backslash and newline). */
function helpText(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go's float formatting is what Prometheus reads; JS numbers print the same for finite values. */
function sample(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

type Sample = { labels?: Record<string, string>; value: number };

function family(spec: MetricSpec, samples: Sample[]): string {
  const lines = [`# HELP ${spec.name} ${helpText(spec.help)}`, `# TYPE ${spec.name} gauge`];
  for (const s of samples) {
    const labels = Object.entries(s.labels ?? {});
    const set = labels.length ? `{${labels.map(([k, v]) => `${k}="${labelValue(v)}"`).join(',')}}` : '';
    lines.push(`${spec.name}${set} ${sample(s.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

const seconds = (ms: number): number => ms / 1000;

/** The exposition text for one run: HELP and TYPE lines before each metric, a newline at the end. */
export function formatTextfile(run: TextfileRun): string {
  const m = TEXTFILE_METRICS;
  const out: string[] = [
    family(m.info, [{ labels: { model: run.model, pipeline: run.pipeline, status: run.status }, value: 1 }]),
    family(m.runTimestamp, [{ value: seconds(run.endedAt) }]),
  ];
  // Never succeeded yet: left out, so `time() - flashcards_last_success_timestamp_seconds` has no
  // series and an `absent()` alert (rather than a huge age) tells of it.
  if (run.lastSuccessAt !== undefined)
    out.push(family(m.successTimestamp, [{ value: seconds(run.lastSuccessAt) }]));
  out.push(
    family(m.duration, [{ value: seconds(run.durationMs) }]),
    family(m.exitCode, [{ value: run.exitCode }]),
  );
  const w = run.work;
  if (w) {
    out.push(
      family(m.items, [
        { labels: { outcome: 'done' }, value: w.items.done },
        { labels: { outcome: 'failed' }, value: w.items.failed },
        { labels: { outcome: 'pending' }, value: w.items.pending },
      ]),
      family(m.requests, [{ value: w.requests }]),
      family(m.retries, [{ value: w.retries }]),
      family(m.tokens, [
        { labels: { type: 'input' }, value: w.tokens.input },
        { labels: { type: 'output' }, value: w.tokens.output },
      ]),
    );
    if (w.costUsd !== null) out.push(family(m.cost, [{ value: w.costUsd }]));
    const lookups = w.cacheHits + w.cacheMisses;
    if (lookups > 0) out.push(family(m.cacheHitRatio, [{ value: w.cacheHits / lookups }]));
    out.push(family(m.rateLimited, [{ value: w.rateLimited }]));
    if (w.breakerState !== undefined)
      out.push(family(m.breakerState, [{ value: BREAKER_STATE_VALUES[w.breakerState] }]));
  }
  return out.join('');
}

/**
 * The last success time (ms since the epoch) recorded in a previous file, so a failed run keeps
 * it; undefined when the file has none (or is not ours).
 */
export function lastSuccessIn(text: string): number | undefined {
  const name = TEXTFILE_METRICS.successTimestamp.name;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `)) continue;
    const value = Number(
      line
        .slice(name.length + 1)
        .trim()
        .split(/\s+/)[0],
    );
    return Number.isFinite(value) && value > 0 ? Math.round(value * 1000) : undefined;
  }
  return undefined;
}
