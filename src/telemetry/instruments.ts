import type { Counter, Gauge, Histogram, Meter } from '@opentelemetry/api';
import { OTEL_METRICS } from './metric-names.ts';

/** The run's metric instruments, one per entry of OTEL_METRICS (and named from it only). */
export interface Instruments {
  tokenUsage: Histogram;
  operationDuration: Histogram;
  items: Counter;
  requests: Counter;
  cacheLookups: Counter;
  retries: Counter;
  rateLimited: Counter;
  limiterWait: Histogram;
  breakerState: Gauge;
  breakerTransitions: Counter;
  queuePending: Gauge;
}

/** The GenAI semantic conventions' recommended buckets (token counts, and seconds). */
const TOKEN_BUCKETS = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
const DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
const WAIT_BUCKETS = [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createInstruments(meter: Meter): Instruments {
  const m = OTEL_METRICS;
  const histogram = (d: (typeof m)[keyof typeof m], description: string, buckets: number[]): Histogram =>
    meter.createHistogram(d.name, {
      unit: d.unit,
      description,
      advice: { explicitBucketBoundaries: buckets },
    });
  const counter = (d: (typeof m)[keyof typeof m], description: string): Counter =>
    meter.createCounter(d.name, { unit: d.unit, description });
  const gauge = (d: (typeof m)[keyof typeof m], description: string): Gauge =>
    meter.createGauge(d.name, { unit: d.unit, description });
  return {
    tokenUsage: histogram(m.tokenUsage, 'Tokens used per model call', TOKEN_BUCKETS),
    operationDuration: histogram(
      m.operationDuration,
      'Duration of one logical model call, retries included',
      DURATION_BUCKETS,
    ),
    items: counter(m.items, 'Items finished by this run'),
    requests: counter(m.requests, 'HTTP requests sent to the provider'),
    cacheLookups: counter(m.cacheLookups, 'Response cache lookups'),
    retries: counter(m.retries, 'Retries scheduled after a failed attempt'),
    rateLimited: counter(m.rateLimited, '429 answers from the provider'),
    limiterWait: histogram(m.limiterWait, 'Time a call waited for the rate limiter', WAIT_BUCKETS),
    breakerState: gauge(m.breakerState, 'Circuit breaker state: 0 closed, 1 half-open, 2 open, 3 isolated'),
    breakerTransitions: counter(m.breakerTransitions, 'Circuit breaker transitions'),
    queuePending: gauge(m.queuePending, 'Items of the batch not finished yet'),
  };
}
