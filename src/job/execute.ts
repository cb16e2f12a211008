import type { ResponseCache, SingleFlight } from '../cache/index.ts';
import { cacheKeyer } from '../cache/index.ts';
import {
  type ChatClient,
  type ChatMessage,
  type ChatRequest,
  messageTokens,
  type TokenUsage,
} from '../client/chat-client.ts';
import { type FlashcardsError, isProviderError, type ProviderError } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import type { Stage, StageInput } from '../pipeline/types.ts';
import { validateAnswer } from '../pipeline/validate.ts';
import type { RetryPolicy } from '../resilience/index.ts';
import { isStoreUnavailable, type StoreHealth } from '../store/health.ts';
import { breakerGate } from './breaker-gate.ts';
import type { CircuitWaits } from './circuit-waits.ts';
import { limiterGate } from './limiter-gate.ts';
import { type Answer, type Attempt, wrap } from './policy.ts';
import type { BreakerPort, CallObserver, JobTelemetry, LimiterPort } from './ports.ts';
import { providerCall } from './provider-call.ts';
import { retrying } from './retrying.ts';
import type { RunStop } from './stop.ts';
import { storeWaits } from './store-waits.ts';
import { validatingWithRepair } from './validation.ts';

/** Everything a job needs from the outside world; composed once per run (see compose.ts). */
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
  limiter: LimiterPort;
  breaker: BreakerPort;
  retry: Pick<RetryPolicy, 'next' | 'onSuccess'>;
  cache: ResponseCache | undefined;
  cacheMode: 'normal' | 'refresh' | 'off';
  staleIfError: boolean;
  singleFlight: SingleFlight;
  events: EventSink;
  /** How long the run may wait on open circuits in all before giving up (--max-wait). */
  maxWaitMs: number;
  /** The run's waits on open circuits, shared by its jobs. */
  circuitWaits: CircuitWaits;
  stop: RunStop;
  counters: { requests: number; retries: number; cacheHits: number; cacheMisses: number };
  /** Told of every booking and request (the run's concurrency controller). */
  observer?: CallObserver | undefined;
  /** Whether the shared store answers; a job waits for it before sending (store-waits.ts). */
  storeHealth: StoreHealth;
  /** The time the breaker's and limiter's state is kept in (the shared store's); the host's when absent. */
  stateNow?: (() => number) | undefined;
  /** Spans and metrics of the job's calls, when the run exports telemetry (OTEL_* variables). */
  telemetry?: JobTelemetry | undefined;
}

/** `requestMs`: the requests' time on the wire (what the job waited for otherwise is not in it). */
export type JobResult =
  | {
      ok: true;
      value: unknown;
      cached: boolean;
      usage: TokenUsage;
      attempts: number;
      requests: number;
      requestMs: number;
    }
  | {
      ok: false;
      error: ProviderError;
      /** Tokens of the answers it was served and could not use: billed all the same. */
      usage: TokenUsage;
      attempts: number;
      requests: number;
      requestMs: number;
    };

/** Errors that end the whole run rather than one item: nothing else can succeed until a person acts. */
export function isRunFatal(error: FlashcardsError): boolean {
  return [
    'auth',
    'quota',
    'circuit_open',
    'deadline',
    'cancelled',
    'store_unavailable',
    'store_lost',
  ].includes(error.kind);
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

/** A cached answer that passes the stage's schema, or undefined. */
async function cachedValue(
  ctx: JobContext,
  stage: Stage,
  key: string,
  allowStale: boolean,
): Promise<{ content: string; value: unknown } | undefined> {
  let hit: Awaited<ReturnType<ResponseCache['get']>>;
  try {
    hit = await ctx.cache?.get(key, { allowStale });
  } catch (e) {
    // A shared cache that does not answer is a miss: the limiter and breaker wait for the store
    // before anything is sent, and a cache that cannot be read is not worth failing a job for.
    if (isStoreUnavailable(e)) return undefined;
    throw e;
  }
  if (!hit) return undefined;
  const checked = validateAnswer(stage, hit.body);
  return checked.ok ? { content: hit.body, value: checked.value } : undefined;
}

/**
 * Runs one job (one item, one stage): the response cache first, then the request through the
 * policies. Identical requests in flight in this process share one upstream call: the request is
 * paid once, so only the caller that sent it reports its usage. Throws only run-ending errors; an
 * item's own failure comes back as `{ ok: false }`.
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

  // The cache is read inside the single flight, not before it: a read takes a round trip on a
  // shared store, and a job whose read began before an identical job's answer was put would miss,
  // find that flight gone, and pay again. Joined at once, it shares the lookup and the request.
  const { value: outcome, shared } = await ctx.singleFlight.join(key, async () => {
    if (ctx.cacheMode === 'normal') {
      const hit = await cachedValue(ctx, stage, key, false);
      if (hit) {
        const answered: JobResult = {
          ok: true,
          value: hit.value,
          cached: true,
          usage: zeroUsage,
          attempts: 0,
          requests: 0,
          requestMs: 0,
        };
        return { hit: true, result: answered };
      }
    }
    return { hit: false, result: await requestAnswer(ctx, stage, request, key, item, input.item.term) };
  });
  if (outcome.hit) ctx.counters.cacheHits++;
  else if (ctx.cache && ctx.cacheMode !== 'off') ctx.counters.cacheMisses++;
  if (ctx.cache && ctx.cacheMode === 'normal' && !shared) ctx.telemetry?.cacheLookup(outcome.hit);
  const result = outcome.result;
  if (!shared || outcome.hit) return result;
  // Another job of this run sent the same request and paid for it: this one was answered for free.
  return result.ok
    ? { ...result, cached: true, usage: zeroUsage, attempts: 0, requests: 0, requestMs: 0 }
    : { ...result, usage: zeroUsage, attempts: 0, requests: 0, requestMs: 0 };
}

/** One job's request through the policies, in the order they apply (outermost first). */
async function requestAnswer(
  ctx: JobContext,
  stage: Stage,
  request: ChatRequest,
  key: string,
  item: number,
  term: string,
): Promise<JobResult> {
  const common = { stop: ctx.stop, events: ctx.events, batchId: ctx.batchId };
  const staleAnswer = async (): Promise<Answer | undefined> => {
    const stale = ctx.staleIfError ? await cachedValue(ctx, stage, key, true) : undefined;
    if (!stale) return undefined;
    ctx.counters.cacheHits++;
    return { content: stale.content, usage: zeroUsage, cached: true };
  };
  const jobId = `${ctx.batchId}:${item}:${stage.name}`;
  // Telemetry, when on, is outermost (one span per logical call, retries included) and innermost
  // (each request sent); it observes and never changes what passes through.
  const telemetry = ctx.telemetry;
  const job = wrap(
    // Items as people count them (the first row is 1), as the run's log names them.
    ...(telemetry ? [telemetry.call({ jobId, item: item + 1, stage: stage.name })] : []),
    retrying({ ...common, policy: ctx.retry, item, stage: stage.name, counters: ctx.counters }),
    validatingWithRepair(stage),
    storeWaits({ ...common, health: ctx.storeHealth, maxWaitMs: ctx.maxWaitMs }),
    breakerGate({
      ...common,
      breaker: ctx.breaker,
      providerKey: ctx.providerKey,
      maxWaitMs: ctx.maxWaitMs,
      waits: ctx.circuitWaits,
      fallback: staleAnswer,
      stateNow: ctx.stateNow,
    }),
    limiterGate({ ...common, limiter: ctx.limiter, maxTokens: ctx.maxTokens, observer: ctx.observer }),
    ...(telemetry ? [telemetry.request] : []),
  )(
    providerCall({
      client: ctx.client,
      signal: ctx.stop.signal,
      counters: ctx.counters,
      observer: ctx.observer,
      now: () => ctx.stop.clock.now(),
    }),
  );

  const attempt: Attempt = {
    request,
    number: 1,
    jobId,
    promptTokens: messageTokens(request.messages),
    tally: { requests: 0, requestMs: 0 },
  };
  const sent = (): number => attempt.tally.requests;
  const onWire = (): number => Math.round(attempt.tally.requestMs);
  try {
    const answer = await job(attempt);
    if (!answer.cached) {
      try {
        await ctx.cache?.put(key, { body: answer.content, model: ctx.model, term, stage: stage.name });
      } catch {
        // The result is stored with the job in state.db all the same; a cache that cannot be
        // written only costs a later re-run, so it must not fail a paid answer.
      }
    }
    return {
      ok: true,
      value: answer.value,
      cached: answer.cached,
      // Every answer served, rejected ones included (a stale answer from the cache costs nothing).
      usage: attempt.tally.usage ?? answer.usage,
      attempts: sent(),
      requests: sent(),
      requestMs: onWire(),
    };
  } catch (e) {
    if (isProviderError(e) && !isRunFatal(e)) {
      return {
        ok: false,
        error: e,
        usage: attempt.tally.usage ?? zeroUsage,
        attempts: sent(),
        requests: sent(),
        requestMs: onWire(),
      };
    }
    throw e;
  }
}
