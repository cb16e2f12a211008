import { SingleFlight } from '../cache/index.ts';
import { createChatClient } from '../client/chat-client.ts';
import type { Transport } from '../client/transport.ts';
import type { Settings } from '../config/index.ts';
import type { Clock } from '../core/clock.ts';
import type { EventSink } from '../core/events.ts';
import { providerKey, publicUrl } from '../core/provider-key.ts';
import type { Random } from '../core/random.ts';
import { CircuitWaits } from '../job/circuit-waits.ts';
import { cacheKeys, type JobContext } from '../job/execute.ts';
import type { JobTelemetry } from '../job/ports.ts';
import { tolerantBreaker, tolerantLimiter } from '../job/tolerant-ports.ts';
import { createLimiter, type Limiter } from '../limiter/index.ts';
import { CircuitBreaker, RetryPolicy } from '../resilience/index.ts';
import type { SharedState } from '../store/state.ts';
import { allowedRequestRate, ConcurrencyController } from './concurrency.ts';
import type { RunSignals } from './run-signals.ts';

export interface ComposeOptions {
  /** The shared state (state.db or Redis): the limiter's and the breaker's stores come from it. */
  state: SharedState;
  settings: Settings;
  batchId: string;
  owner: string;
  refresh: boolean;
  transport: Transport | undefined;
  events: EventSink;
  signals: RunSignals;
  deadlineMs: number | undefined;
  clock: Clock;
  random: Random;
  /** Spans and metrics of the job's calls, when the run exports telemetry. */
  telemetry?: JobTelemetry | undefined;
}

export interface ComposedRun {
  job: JobContext;
  limiter: Limiter;
  /** How many requests the run keeps in flight: pinned by --concurrency, or steered. */
  concurrency: ConcurrencyController;
  /** Requests per second the limiter allows the key now (for the controller); null: no limit known. */
  allowedRate: () => Promise<number | null>;
  /** Records the latency the run sees on the key (for `limiter status`). */
  noteLatency: (latency: { p50Ms: number; p75Ms: number }) => Promise<void>;
}

/** Where an unpinned run starts: small, the controller grows it within the first second. */
const INITIAL_CONCURRENCY = 4;

/**
 * Builds the policies one run uses (limiter, breaker, retry, cache, client) from the settings.
 * Shared state (limiter, breaker) lives in the shared state under the provider key, so other
 * processes on the same key (on this machine, or on others sharing a Redis store) see it. The caller closes `cache` at the end.
 */
export function composeRun(o: ComposeOptions): ComposedRun {
  const { settings, clock } = o;
  // The limiter's and breaker's arithmetic runs in the store's time (Redis TIME on a shared store).
  const stateClock = o.state.clock;
  const key = providerKey({ baseUrl: settings.baseUrl, model: settings.model, apiKey: settings.apiKey });
  const limiter = createLimiter(
    o.state.limiter.store,
    key,
    {
      rpm: settings.limiter.rpm,
      tpm: settings.limiter.tpm,
      burstSeconds: settings.limiter.burstSeconds,
      shards: settings.limiter.shards,
      // Prompt size is bounded by the prompts plus an analysis: max_tokens plus a generous margin.
      maxRequestTokens: settings.maxTokens + 4000,
    },
    { clock: stateClock },
  );
  const breaker = new CircuitBreaker(
    o.state.breaker.store,
    key,
    {
      samplingWindowMs: settings.breaker.samplingWindowMs,
      failureRatio: settings.breaker.failureRatio,
      minThroughput: settings.breaker.minThroughput,
      breakDurationMs: settings.breaker.breakDurationMs,
      maxBreakDurationMs: settings.breaker.maxBreakDurationMs,
      probeLeaseMs: settings.timeoutMs + 5000,
    },
    {
      clock: stateClock,
      ownerId: o.owner,
      onTransition: (t) =>
        o.events.emit({ type: 'breaker_transition', key, from: t.from, to: t.to, cause: t.cause }),
    },
  );
  const cacheMode = !settings.cache.enabled ? 'off' : o.refresh ? 'refresh' : 'normal';
  const cache = cacheMode === 'off' ? undefined : o.state.cache.open(settings.cache, { random: o.random });
  const client = createChatClient({
    baseUrl: settings.baseUrl,
    apiKey: settings.apiKey,
    timeoutMs: settings.timeoutMs,
    transport: o.transport,
    now: () => clock.now(),
  });
  const concurrency = new ConcurrencyController(
    { fixed: settings.concurrency, initial: INITIAL_CONCURRENCY, max: settings.maxConcurrency },
    clock,
  );
  const job: JobContext = {
    batchId: o.batchId,
    providerKey: key,
    model: settings.model,
    temperature: settings.temperature,
    maxTokens: settings.maxTokens,
    client,
    cacheKey: cacheKeys(settings),
    limiter: tolerantLimiter(limiter),
    breaker: tolerantBreaker(breaker),
    retry: new RetryPolicy(settings.retry, { random: o.random, endpoint: publicUrl(settings.baseUrl) }),
    cache,
    cacheMode,
    staleIfError: settings.cache.staleIfError,
    singleFlight: new SingleFlight(),
    events: o.events,
    maxWaitMs: settings.breaker.maxWaitMs,
    circuitWaits: new CircuitWaits(),
    stop: { clock, signal: o.signals.signal, stopSignal: o.signals.stopSignal, deadlineMs: o.deadlineMs },
    counters: { requests: 0, retries: 0, cacheHits: 0, cacheMisses: 0 },
    observer: concurrency,
    storeHealth: o.state.health,
    stateNow: () => stateClock.now(),
    telemetry: o.telemetry,
  };
  return {
    job,
    limiter,
    concurrency,
    allowedRate: async () => allowedRequestRate(await limiter.snapshot(), concurrency.tokensPerRequest),
    noteLatency: (latency) => limiter.noteLatency(latency),
  };
}
