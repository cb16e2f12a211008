export {
  type BreakerDecision,
  type BreakerDeps,
  type BreakerHistoryEntry,
  type BreakerSettings,
  type BreakerState,
  type BreakerStatus,
  type BreakerTransition,
  breakDurationMs,
  breakerHistory,
  breakerVerdict,
  type CallOutcome,
  CircuitBreaker,
  defaultBreakerSettings,
  listBreakers,
} from './breaker.ts';
export { circuitOpenError } from './circuit-open.ts';
export {
  classifyFetchError,
  classifyHttpError,
  invalidResponseError,
} from './classify.ts';
export {
  defaultRetryBudget,
  defaultRetrySettings,
  fullJitterDelay,
  type RetryBudgetSettings,
  type RetryDecision,
  RetryPolicy,
  type RetrySettings,
} from './retry.ts';
