import type { ResponseCache, SingleFlight } from '../cache/index.ts';
import { cacheKeyer } from '../cache/index.ts';
import {
  type ChatClient,
  type ChatMessage,
  type ChatRequest,
  type ChatResult,
  messageTokens,
  type TokenUsage,
} from '../client/chat-client.ts';
import type { Clock } from '../core/clock.ts';
import { ExitCode, FlashcardsError, isProviderError, ProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import type { Limiter } from '../limiter/index.ts';
import type { Stage, StageInput } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import type { CircuitBreaker, RetryPolicy } from '../resilience/index.ts';
import { circuitOpenError, classifyFetchError, invalidResponseError } from '../resilience/index.ts';

/** Everything a job needs from the outside world; composed once per run. */
export interface JobContext {
  batchId: string;
  /** base URL | model | key hash: names the limiter and breaker this run shares with others. */
  providerKey: string;
  model: string;
  temperature: number;
  maxTokens: number;
  client: ChatClient;
  /** The response cache's key for a stage request (see cacheKeys). */
  cacheKey: (stage: Stage, messages: readonly ChatMessage[]) => string;
  limiter: Limiter;
  breaker: CircuitBreaker;
  retry: RetryPolicy;
  cache: ResponseCache | undefined;
  cacheMode: 'normal' | 'refresh' | 'off';
  staleIfError: boolean;
  singleFlight: SingleFlight;
  clock: Clock;
  events: EventSink;
  /** How long to wait for an open circuit before giving up the run. */
  maxWaitMs: number;
  deadlineMs: number | undefined;
  /** Aborted to cancel in-flight work at once (second signal, end of grace period). */
  signal: AbortSignal;
  /** Aborted when the run stops taking new work (also when `signal` is): waits (breaker, limiter, backoff) end early. */
  stopSignal: AbortSignal;
  counters: { requests: number; retries: number; cacheHits: number; cacheMisses: number };
}

export type JobResult =
  | { ok: true; value: unknown; cached: boolean; usage: TokenUsage; attempts: number; requests: number }
  | { ok: false; error: ProviderError; attempts: number; requests: number };

/** Errors that end the whole run rather than one item: nothing else can succeed until a person acts. */
export function isRunFatal(error: FlashcardsError): boolean {
  return ['auth', 'quota', 'circuit_open', 'deadline', 'cancelled'].includes(error.kind);
}

interface KeyParams {
  baseUrl: string;
  model: string;
  temperature: number;
  maxTokens: number;
}

/**
 * The cache key of a stage request under fixed settings. Each stage's keyer (everything but the
 * messages serialised once; the response format enters as the stage's schema digest) is built on
 * first use: a run calls this once and keys every request with the function it returns.
 */
export function cacheKeys(p: KeyParams): (stage: Stage, messages: readonly ChatMessage[]) => string {
  const keyers = new Map<Stage, (messages: readonly ChatMessage[]) => string>();
  return (stage, messages) => {
    let keyer = keyers.get(stage);
    if (!keyer) {
      keyer = cacheKeyer({
        baseUrl: p.baseUrl,
        model: p.model,
        responseFormat: { type: 'json_schema', strict: true, schema: stage.schemaDigest },
        params: { temperature: p.temperature, max_tokens: p.maxTokens },
      });
      keyers.set(stage, keyer);
    }
    return keyer(messages);
  };
}

const zeroUsage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 };

function stoppedError(ctx: JobContext): FlashcardsError {
  if (ctx.deadlineMs !== undefined && ctx.clock.now() >= ctx.deadlineMs) {
    return new FlashcardsError('deadline', 'the run reached its --max-duration');
  }
  return new ProviderError('cancelled', 'the run was stopped', { retryable: false });
}

/**
 * Runs one job (one item, one stage): cache, then the retry loop around breaker, limiter and
 * provider, then validation. The order of the policies is visible here and nowhere else.
 * Throws only run-fatal errors; an item's own failure comes back as `{ ok: false }`.
 */
export async function executeJob(
  ctx: JobContext,
  stage: Stage,
  input: StageInput,
  item: number,
): Promise<JobResult> {
  const messages = stage.buildMessages(input);
  const request: ChatRequest = {
    model: ctx.model,
    messages,
    responseFormat: stage.responseFormat,
    temperature: ctx.temperature,
    maxTokens: ctx.maxTokens,
  };
  const key = ctx.cacheKey(stage, messages);

  if (ctx.cache && ctx.cacheMode === 'normal') {
    const hit = ctx.cache.get(key);
    if (hit) {
      const checked = validateAnswer(stage, hit.body);
      if (checked.ok) {
        ctx.counters.cacheHits++;
        return { ok: true, value: checked.value, cached: true, usage: zeroUsage, attempts: 0, requests: 0 };
      }
    }
  }
  if (ctx.cache && ctx.cacheMode !== 'off') ctx.counters.cacheMisses++;

  // Identical requests in flight in this process share one upstream call.
  return ctx.singleFlight.run(key, () =>
    callWithPolicies(ctx, stage, request, key, {
      id: `${ctx.batchId}:${item}:${stage.name}`,
      item,
      term: input.item.term,
    }),
  );
}

async function callWithPolicies(
  ctx: JobContext,
  stage: Stage,
  baseRequest: ChatRequest,
  key: string,
  job: { id: string; item: number; term: string },
): Promise<JobResult> {
  const { item } = job;
  const promptTokens = messageTokens(baseRequest.messages);
  const tokenEstimate = promptTokens + ctx.maxTokens;
  let request = baseRequest;
  let attempts = 0;
  let requests = 0;
  let feedbackGiven = false;
  let lastWaitEvent = 0;

  for (;;) {
    if (ctx.signal.aborted || ctx.stopSignal.aborted) throw stoppedError(ctx);

    const decision = ctx.breaker.acquire();
    if (!decision.allowed) {
      if (ctx.staleIfError && ctx.cache) {
        const stale = ctx.cache.get(key, { allowStale: true });
        const checked = stale ? validateAnswer(stage, stale.body) : undefined;
        if (checked?.ok) {
          ctx.counters.cacheHits++;
          return { ok: true, value: checked.value, cached: true, usage: zeroUsage, attempts, requests };
        }
      }
      const now = ctx.clock.now();
      const waitMs = decision.retryAtMs === null ? Number.POSITIVE_INFINITY : decision.retryAtMs - now;
      if (
        waitMs > ctx.maxWaitMs ||
        (ctx.deadlineMs !== undefined && now + Math.max(waitMs, 0) > ctx.deadlineMs)
      ) {
        throw circuitOpenError(ctx.providerKey, decision, now);
      }
      if (now - lastWaitEvent > 5000) {
        lastWaitEvent = now;
        ctx.events.emit({
          type: 'breaker_wait',
          batchId: ctx.batchId,
          state: decision.state,
          untilMs: decision.retryAtMs,
        });
      }
      // Re-check at least every second: another process may close or isolate the breaker.
      await sleepOrStop(ctx, Math.min(Math.max(waitMs, 50), 1000));
      continue;
    }

    // Give an unused half-open probe back at once.
    const releaseProbe = (): void => ctx.breaker.release(decision);
    const maxWaitMs = ctx.deadlineMs === undefined ? 120_000 : Math.max(0, ctx.deadlineMs - ctx.clock.now());
    let reservation: ReturnType<Limiter['reserve']>;
    try {
      reservation = ctx.limiter.reserve({ jobId: job.id, tokens: tokenEstimate }, { maxWaitMs });
    } catch (e) {
      releaseProbe();
      throw e;
    }
    if (!reservation.ok) {
      releaseProbe();
      const now = ctx.clock.now();
      if (reservation.delayMs >= 2000 && now - lastWaitEvent > 5000) {
        lastWaitEvent = now;
        ctx.events.emit({
          type: 'rate_limited',
          batchId: ctx.batchId,
          waitMs: reservation.delayMs,
          reason: reservation.message,
        });
      }
      if (ctx.deadlineMs !== undefined && ctx.clock.now() + reservation.delayMs > ctx.deadlineMs) {
        throw new FlashcardsError(
          'deadline',
          'the run reached its --max-duration while waiting for the rate limit',
        );
      }
      await sleepOrStop(ctx, Math.min(Math.max(reservation.delayMs, 10), 1000), reservation.wake);
      continue;
    }
    if (reservation.delayMs > 0) {
      if (reservation.delayMs >= 2000) {
        ctx.events.emit({
          type: 'rate_limited',
          batchId: ctx.batchId,
          waitMs: reservation.delayMs,
          reason: 'rate limit budget',
        });
      }
      try {
        await sleepOrStop(ctx, reservation.delayMs);
      } catch (e) {
        reservation.cancel();
        releaseProbe();
        throw e;
      }
    }

    attempts++;
    requests++;
    ctx.counters.requests++;
    // Only the network call is inside this try: a failure in our own bookkeeping afterwards must
    // never turn a paid, valid answer into a "network" error and a retry.
    let result: ChatResult | undefined;
    let error: ProviderError | undefined;
    try {
      result = await ctx.client.complete(request, ctx.signal);
    } catch (e) {
      error = isProviderError(e)
        ? e
        : classifyFetchError(e, { timedOut: false, timeoutMs: 0, cancelled: ctx.signal.aborted });
      // A 429 or a request that never left spent no provider tokens; anything else may have.
      if (error.kind === 'rate_limit' || error.kind === 'cancelled') reservation.cancel();
      else reservation.settle(promptTokens);
      ctx.breaker.record({ ok: false, error }, decision);
      if (error.kind === 'cancelled') throw stoppedError(ctx);
      if (error.kind === 'auth' || error.kind === 'quota') throw error;
    }
    if (result) {
      reservation.settle(result.usage.totalTokens);
      ctx.breaker.record({ ok: true }, decision);
      const checked = validateAnswer(stage, result.content);
      if (checked.ok) {
        ctx.retry.onSuccess();
        try {
          ctx.cache?.put(key, { body: result.content, model: ctx.model, term: job.term, stage: stage.name });
        } catch {
          // The result is stored with the job in state.db all the same; a cache that cannot be
          // written only costs a later re-run, so it must not fail a paid answer.
        }
        return { ok: true, value: checked.value, cached: false, usage: result.usage, attempts, requests };
      }
      error = invalidResponseError(checked.detail);
      // Once, tell the model what was wrong with its answer; a second failure gets a plain retry.
      if (!feedbackGiven) {
        feedbackGiven = true;
        request = {
          ...baseRequest,
          messages: [
            ...baseRequest.messages,
            { role: 'assistant', content: result.content.slice(0, 4000) },
            {
              role: 'user',
              content: `That answer was rejected: ${checked.detail}. Answer again with JSON that matches the schema exactly.`,
            },
          ],
        };
      }
    }
    if (!error) throw new FlashcardsError('internal', 'a request ended with neither an answer nor an error');

    const verdict = ctx.retry.decide(error, attempts, { nowMs: ctx.clock.now(), deadlineMs: ctx.deadlineMs });
    let delayMs: number;
    let note = '';
    if (verdict.retry) {
      delayMs = verdict.delayMs;
    } else if (verdict.reason === 'budget') {
      // The process is out of retry budget: it sheds load, the item did nothing wrong. Wait the
      // longest backoff and try again (attempts still bound the item; the breaker, seeing
      // these failures, opens and holds everyone) instead of failing an item a re-run skips.
      delayMs = ctx.retry.settings.maxDelayMs;
      note = ' (retry budget spent: waiting the longest backoff)';
    } else if (verdict.reason === 'unusable') {
      const what =
        error.kind === 'bad_request'
          ? 'the provider refused the first requests of the run and accepted none'
          : "the provider's answers are unusable: none has passed validation yet, and the retry budget went on them";
      throw new FlashcardsError('config', `${what} (last: ${error.message})`, {
        exitCode: ExitCode.aborted,
        hint: 'check --model and --base-url: the model must exist there and support structured output (response_format json_schema); then run again with --retry-failed',
      });
    } else if (verdict.reason === 'deadline' && error.retryable) {
      throw new FlashcardsError(
        'deadline',
        `the run reached its --max-duration (last error: ${error.message})`,
      );
    } else {
      return { ok: false, error, attempts, requests };
    }
    ctx.counters.retries++;
    ctx.events.emit({
      type: 'retry_scheduled',
      batchId: ctx.batchId,
      item,
      stage: stage.name,
      attempt: attempts,
      delayMs: Math.round(delayMs),
      errorKind: error.kind,
      message: error.message + note,
    });
    await sleepOrStop(ctx, delayMs);
  }
}

/** Sleeps `ms`, or less when `wake` resolves first; a stopped run ends the wait with its error. */
async function sleepOrStop(ctx: JobContext, ms: number, wake?: Promise<void>): Promise<void> {
  const early = wake ? new AbortController() : undefined;
  const signal = early ? AbortSignal.any([ctx.stopSignal, early.signal]) : ctx.stopSignal;
  try {
    await (wake ? Promise.race([ctx.clock.sleep(ms, signal), wake]) : ctx.clock.sleep(ms, signal));
  } catch {
    throw stoppedError(ctx);
  } finally {
    // Ends the sleep that lost the race (its timer would hold the process open).
    early?.abort();
  }
}
