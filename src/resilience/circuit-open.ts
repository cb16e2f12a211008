import { formatDuration } from '../core/duration.ts';
import { ExitCode, ProviderError } from '../core/errors.ts';
import type { BreakerDecision } from './breaker.ts';

type Rejected = Extract<BreakerDecision, { allowed: false }>;

/**
 * The error a batch stops with when the breaker will not let calls through within --max-wait:
 * says which provider, why, and when running again makes sense.
 */
export function circuitOpenError(
  key: string,
  decision: Rejected,
  nowMs: number,
  /** How long this run has already waited on open circuits (--max-wait bounds the sum). */
  waitedMs = 0,
): ProviderError {
  const at = decision.retryAtMs;
  const when =
    at === null
      ? ''
      : `; next probe allowed at ${new Date(at).toISOString()} (in ${formatDuration(Math.max(0, at - nowMs))})`;
  const hint =
    decision.state === 'isolated'
      ? 'run `flashcards breaker close` when the provider is usable again, then run the same command to resume'
      : at === null
        ? 'run the same command again later to resume, or `flashcards breaker close` if the provider is back'
        : `run the same command again after ${new Date(at).toISOString()} to resume, or \`flashcards breaker close\` if the provider is back`;
  const waited = waitedMs >= 1000 ? `; waited ${formatDuration(waitedMs)} in all (--max-wait)` : '';
  return new ProviderError('circuit_open', `${decision.reason} [${key}]${when}${waited}`, {
    retryable: false,
    retryAfterMs: at === null ? undefined : Math.max(0, at - nowMs),
    exitCode: ExitCode.aborted,
    hint,
  });
}
