export { type BreakerDeps, type BreakerTransition, CircuitBreaker } from './breaker.ts';
export {
  type BreakerStatus,
  breakerHistory,
  closeBreaker,
  isolateBreaker,
  listBreakers,
  type ManualChange,
  removeBreaker,
} from './breaker-admin.ts';
export {
  type BreakerDecision,
  type BreakerSettings,
  type BreakerState,
  breakDurationMs,
  breakerVerdict,
  type CallOutcome,
  type Circuit,
  defaultBreakerSettings,
} from './breaker-machine.ts';
export type {
  BreakerAdmin,
  BreakerHistoryEntry,
  BreakerSnapshot,
  BreakerStore,
} from './breaker-store.ts';
export { openSqliteBreakerStore, SqliteBreakerStore } from './breaker-store-sqlite.ts';
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
