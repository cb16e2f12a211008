/**
 * The OpenTelemetry metrics a run emits, by name: the instruments (telemetry/otel*.ts) and the
 * Grafana dashboard's test (docs/grafana-dashboard.json) both read this list, so a renamed metric
 * cannot leave a panel querying nothing. The two `gen_ai.*` names and their units are the GenAI
 * semantic conventions'; the rest are the project's own, low-cardinality attributes only.
 */
export const OTEL_METRICS = {
  /** Histogram of tokens per model call; attribute gen_ai.token.type = input | output. */
  tokenUsage: { name: 'gen_ai.client.token.usage', unit: '{token}', kind: 'histogram' },
  /** Histogram of one logical model call's duration, retries included. */
  operationDuration: { name: 'gen_ai.client.operation.duration', unit: 's', kind: 'histogram' },
  /** Items finished by this run; attribute outcome = done | failed. */
  items: { name: 'flashcards.items', unit: '{item}', kind: 'counter' },
  /** HTTP requests sent to the provider; attribute http.response.status_code (0: no answer). */
  requests: { name: 'flashcards.requests', unit: '{request}', kind: 'counter' },
  /** Response cache lookups; attribute result = hit | miss. */
  cacheLookups: { name: 'flashcards.cache.lookups', unit: '{lookup}', kind: 'counter' },
  /** Retries scheduled after a failed attempt. */
  retries: { name: 'flashcards.retries', unit: '{retry}', kind: 'counter' },
  /** 429 answers from the provider. */
  rateLimited: { name: 'flashcards.rate_limited', unit: '{response}', kind: 'counter' },
  /** Histogram of the time a call waited for the rate limiter. */
  limiterWait: { name: 'flashcards.limiter.wait', unit: 's', kind: 'histogram' },
  /** Gauge: 0 closed, 1 half-open, 2 open, 3 isolated; attribute key. */
  breakerState: { name: 'flashcards.breaker.state', unit: '1', kind: 'gauge' },
  /** Breaker transitions; attribute to = closed | half_open | open | isolated. */
  breakerTransitions: { name: 'flashcards.breaker.transitions', unit: '{transition}', kind: 'counter' },
  /** Gauge: items of the batch not finished yet (by any run). */
  queuePending: { name: 'flashcards.queue.pending', unit: '{item}', kind: 'gauge' },
} as const;

export type OtelMetric = (typeof OTEL_METRICS)[keyof typeof OTEL_METRICS];
