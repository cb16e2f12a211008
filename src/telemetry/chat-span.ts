import type { AsyncLocalStorage } from 'node:async_hooks';
import {
  type Attributes,
  type Context,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import type { TokenUsage } from '../client/chat-client.ts';
import type { Clock } from '../core/clock.ts';
import { isFlashcardsError, isProviderError } from '../core/errors.ts';
import type { Policy } from '../job/policy.ts';
import type { JobTelemetry } from '../job/ports.ts';
import type { Instruments } from './instruments.ts';

/** Who the calls go to, as the GenAI semantic conventions name it. */
export interface ChatTarget {
  /** gen_ai.provider.name: `openai`, `groq`... or the base URL's host for others. */
  provider: string;
  model: string;
  serverAddress: string;
  /** Absent for a base URL that is not http(s) (the offline mock). */
  serverPort?: number | undefined;
}

export interface ChatTelemetryOptions {
  tracer: Tracer;
  /** The context the calls' spans are children of (the run's root span). */
  parent: () => Context;
  /** Span times and durations: the run's clock. */
  clock: Clock;
  target: ChatTarget;
  /** Absent when metrics are not exported. */
  instruments: Instruments | undefined;
  /** The call span a piece of code runs under: the run's log records name it. */
  current: AsyncLocalStorage<Span>;
}

/** The `error.type` of a failure: our error kind (`server`, `timeout`, `rate_limit`...), else the class. */
export function errorType(e: unknown): string {
  if (isFlashcardsError(e)) return e.kind;
  return e instanceof Error ? e.name : '_OTHER';
}

/**
 * Spans and metrics of a job's model calls. `call` makes one CLIENT span `chat {model}` per
 * logical call, retries included (http.request.resend_count = requests - 1), with the GenAI
 * semantic conventions' attributes; `request` counts each request sent by status and records a
 * failed one as an event on that span. Only sizes, counts and kinds are recorded: never the
 * prompt or the answer.
 */
export function chatTelemetry(o: ChatTelemetryOptions): JobTelemetry {
  const { target } = o;
  const common: Attributes = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': target.provider,
    'gen_ai.request.model': target.model,
    'server.address': target.serverAddress,
    ...(target.serverPort === undefined ? {} : { 'server.port': target.serverPort }),
  };
  const call = (job: { jobId: string; item: number; stage: string }): Policy => {
    return (next) => async (attempt) => {
      const started = o.clock.now();
      const span = o.tracer.startSpan(
        `chat ${target.model}`,
        {
          kind: SpanKind.CLIENT,
          startTime: started,
          attributes: {
            ...common,
            'gen_ai.request.max_tokens': attempt.request.maxTokens,
            'gen_ai.request.temperature': attempt.request.temperature,
            'flashcards.job.id': job.jobId,
            'flashcards.item': job.item,
            'flashcards.stage': job.stage,
          },
        },
        o.parent(),
      );
      const tally = attempt.tally;
      const ended = (): Attributes => ({
        'http.request.resend_count': Math.max(0, tally.requests - 1),
        'flashcards.limiter.wait_ms': Math.round(tally.limiterWaitMs ?? 0),
        ...(tally.breakerState ? { 'flashcards.breaker.state': tally.breakerState } : {}),
      });
      const measure = (attributes: Attributes): void => {
        const ins = o.instruments;
        if (!ins) return;
        ins.operationDuration.record((o.clock.now() - started) / 1000, attributes);
        if (tally.requests > 0) ins.limiterWait.record((tally.limiterWaitMs ?? 0) / 1000);
      };
      const recordTokens = (usage: TokenUsage, attributes: Attributes): void => {
        o.instruments?.tokenUsage.record(usage.promptTokens, { ...attributes, 'gen_ai.token.type': 'input' });
        o.instruments?.tokenUsage.record(usage.completionTokens, {
          ...attributes,
          'gen_ai.token.type': 'output',
        });
      };
      let answer: Awaited<ReturnType<typeof next>>;
      try {
        answer = await o.current.run(span, () => next(attempt));
      } catch (e) {
        const type = errorType(e);
        // Answers served and rejected (schema, cut off) were billed: their tokens count too.
        const served = attempt.tally.usage;
        span.setAttributes({
          ...ended(),
          'error.type': type,
          ...(served
            ? {
                'gen_ai.usage.input_tokens': served.promptTokens,
                'gen_ai.usage.output_tokens': served.completionTokens,
              }
            : {}),
        });
        if (served) recordTokens(served, { ...common, 'error.type': type });
        // The message names the failure (status, timeout); it is ours, never the provider's text.
        span.setStatus({ code: SpanStatusCode.ERROR, message: isFlashcardsError(e) ? e.kind : type });
        span.end(o.clock.now());
        measure({ ...common, 'error.type': type });
        throw e;
      }
      // A stale answer from the cache while the circuit is open is a cache hit: no call span. A
      // span that is never ended is never exported.
      if (answer.cached) return answer;
      const responseModel = answer.model ?? target.model;
      // Every answer served in this call, the rejected ones before this one included.
      const usage = attempt.tally.usage ?? answer.usage;
      span.setAttributes({
        ...ended(),
        'gen_ai.response.model': responseModel,
        'gen_ai.usage.input_tokens': usage.promptTokens,
        'gen_ai.usage.output_tokens': usage.completionTokens,
      });
      span.end(o.clock.now());
      const attributes = { ...common, 'gen_ai.response.model': responseModel };
      measure(attributes);
      recordTokens(usage, attributes);
      return answer;
    };
  };

  const request: Policy = (next) => async (attempt) => {
    try {
      const answer = await next(attempt);
      o.instruments?.requests.add(1, { 'http.response.status_code': 200 });
      return answer;
    } catch (e) {
      // A request that never left (cancelled before sending) is not counted by providerCall either.
      if (isProviderError(e)) {
        const status = e.status ?? 0;
        o.instruments?.requests.add(1, { 'http.response.status_code': status });
        if (status === 429) o.instruments?.rateLimited.add(1);
        o.current.getStore()?.addEvent(
          'attempt_failed',
          {
            'flashcards.attempt': attempt.number,
            'error.type': e.kind,
            'http.response.status_code': status,
          },
          o.clock.now(),
        );
      }
      throw e;
    }
  };

  return {
    call,
    request,
    cacheLookup(hit) {
      o.instruments?.cacheLookups.add(1, { result: hit ? 'hit' : 'miss' });
    },
  };
}
