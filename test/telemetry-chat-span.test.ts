import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { ChatRequest } from '../src/client/chat-client.ts';
import { FakeClock } from '../src/core/clock.ts';
import { ProviderError } from '../src/core/errors.ts';
import type { RunEvent } from '../src/core/events.ts';
import { type Answer, type Attempt, type Step, wrap } from '../src/job/policy.ts';
import { retrying } from '../src/job/retrying.ts';
import type { RunStop } from '../src/job/stop.ts';
import { RetryPolicy } from '../src/resilience/index.ts';
import { chatTelemetry } from '../src/telemetry/chat-span.ts';
import { OTEL_METRICS } from '../src/telemetry/metric-names.ts';
import { drive } from './support/drive.ts';
import { memoryTelemetry } from './support/otel-memory.ts';

const PROMPT = 'make cards for 사과';
const ANSWER = '{"cards":[{"front":"사과","back":"apple"}]}';
const request: ChatRequest = {
  model: 'gpt-x',
  messages: [{ role: 'user', content: PROMPT }],
  responseFormat: { type: 'json_schema', json_schema: { name: 's', strict: true, schema: {} } },
  temperature: 0.3,
  maxTokens: 500,
};
const target = { provider: 'openai', model: 'gpt-x', serverAddress: 'api.openai.com', serverPort: 443 };

function attempt(): Attempt {
  return { request, number: 1, jobId: 'b:0:cards', promptTokens: 40, tally: { requests: 0, requestMs: 0 } };
}

function setup() {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const t = memoryTelemetry();
  const job = chatTelemetry({ ...t, clock, target });
  const stop: RunStop = {
    clock,
    signal: new AbortController().signal,
    stopSignal: new AbortController().signal,
    deadlineMs: undefined,
  };
  const events: RunEvent[] = [];
  const retry = retrying({
    policy: new RetryPolicy({ maxAttempts: 3, baseDelayMs: 1000, maxDelayMs: 8000 }, { random: () => 0.5 }),
    stop,
    events: { emit: (e) => void events.push(e) },
    batchId: 'b',
    item: 1,
    stage: 'cards',
    counters: { retries: 0 },
  });
  const policies = wrap(job.call({ jobId: 'b:0:cards', item: 1, stage: 'cards' }), retry, job.request);
  return { clock, t, job, policies };
}

/** A provider step from a script: each entry an answer's content or an error; 1 s on the wire each. */
function scripted(
  clock: FakeClock,
  script: (string | ProviderError)[],
  seen: (a: Attempt) => void = () => {},
): Step {
  return async (a) => {
    a.tally.requests++;
    seen(a);
    await clock.sleep(1000);
    const next = script.shift();
    if (next === undefined) throw new Error('script ran out');
    if (typeof next !== 'string') throw next;
    const answer: Answer = {
      content: next,
      usage: { promptTokens: 40, completionTokens: 12, totalTokens: 52 },
      cached: false,
      model: 'gpt-x-2026-01-01',
    };
    return answer;
  };
}

const serverError = (): ProviderError =>
  new ProviderError('server', 'HTTP 500', { retryable: true, status: 500 });

describe('chat span policy', () => {
  test('one CLIENT span per logical call, retries included, with the GenAI attributes and no text', async () => {
    const s = setup();
    const start = s.clock.now();
    const answer = await drive(s.clock, s.policies(scripted(s.clock, [serverError(), ANSWER]))(attempt()));
    assert.equal(answer.content, ANSWER);
    const spans = s.t.spans.getFinishedSpans();
    assert.equal(spans.length, 1);
    const span = spans[0]!;
    assert.equal(span.name, 'chat gpt-x');
    assert.equal(span.kind, SpanKind.CLIENT);
    assert.equal(span.parentSpanContext?.spanId, s.t.root.spanContext().spanId);
    assert.equal(span.spanContext().traceId, s.t.root.spanContext().traceId);
    assert.equal(span.status.code, SpanStatusCode.UNSET);
    assert.deepEqual(span.attributes, {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-x',
      'server.address': 'api.openai.com',
      'server.port': 443,
      'gen_ai.request.max_tokens': 500,
      'gen_ai.request.temperature': 0.3,
      'flashcards.job.id': 'b:0:cards',
      'flashcards.item': 1,
      'flashcards.stage': 'cards',
      'http.request.resend_count': 1,
      'flashcards.limiter.wait_ms': 0,
      'gen_ai.response.model': 'gpt-x-2026-01-01',
      'gen_ai.usage.input_tokens': 40,
      'gen_ai.usage.output_tokens': 12,
    });
    // The failed first attempt is an event on the span, at the time it failed.
    assert.deepEqual(
      span.events.map((e) => [e.name, e.attributes]),
      [
        [
          'attempt_failed',
          { 'flashcards.attempt': 1, 'error.type': 'server', 'http.response.status_code': 500 },
        ],
      ],
    );
    // From the call's start to its answer in fake time: 1 s, a 0.5 s backoff (full jitter of 1 s at 0.5), 1 s.
    const ms = (t: [number, number]): number => t[0] * 1000 + t[1] / 1e6;
    assert.equal(ms(span.startTime), start);
    assert.equal(ms(span.endTime) - ms(span.startTime), 2500);
    const text = JSON.stringify([span.attributes, span.events, span.name]);
    assert.ok(!text.includes('사과'), 'no prompt or answer text in the span');
  });

  test('a failed call ends its span with error.type and an error status', async () => {
    const s = setup();
    const bad = new ProviderError('bad_request', 'HTTP 400: prompt too long', {
      retryable: false,
      status: 400,
    });
    await assert.rejects(drive(s.clock, s.policies(scripted(s.clock, [bad]))(attempt())), bad);
    const [span, ...rest] = s.t.spans.getFinishedSpans();
    assert.equal(rest.length, 0);
    assert.equal(span?.attributes['error.type'], 'bad_request');
    assert.equal(span?.attributes['http.request.resend_count'], 0);
    assert.deepEqual(span?.status, { code: SpanStatusCode.ERROR, message: 'bad_request' });
    const durations = await s.t.points(OTEL_METRICS.operationDuration.name);
    assert.equal(durations.length, 1);
    assert.equal(durations[0]?.attributes['error.type'], 'bad_request');
  });

  test('an answer served from the cache (stale, circuit open) makes no span', async () => {
    const s = setup();
    const stale: Step = async () => ({
      content: ANSWER,
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
      cached: true,
    });
    const answer = await s.policies(stale)(attempt());
    assert.equal(answer.cached, true);
    assert.equal(s.t.spans.getFinishedSpans().length, 0);
    assert.deepEqual(await s.t.points(OTEL_METRICS.tokenUsage.name), []);
  });

  test('code running under a call sees its span (the log records name it)', async () => {
    const s = setup();
    let seen: string | undefined;
    await drive(
      s.clock,
      s.policies(scripted(s.clock, [ANSWER], () => (seen = s.t.current.getStore()?.spanContext().spanId)))(
        attempt(),
      ),
    );
    assert.equal(seen, s.t.spans.getFinishedSpans()[0]?.spanContext().spanId);
    assert.equal(s.t.current.getStore(), undefined);
  });

  test('metrics: tokens by type, the call duration in seconds, requests by status code, 429s', async () => {
    const s = setup();
    const tooMany = new ProviderError('rate_limit', 'HTTP 429', { retryable: true, status: 429 });
    await drive(s.clock, s.policies(scripted(s.clock, [tooMany, serverError(), ANSWER]))(attempt()));
    const tokens = await s.t.points(OTEL_METRICS.tokenUsage.name);
    assert.deepEqual(
      tokens.map((p) => [p.attributes['gen_ai.token.type'], (p.value as { sum: number }).sum]),
      [
        ['input', 40],
        ['output', 12],
      ],
    );
    assert.equal(tokens[0]?.attributes['gen_ai.response.model'], 'gpt-x-2026-01-01');
    const [duration] = await s.t.points(OTEL_METRICS.operationDuration.name);
    // 3 requests of 1 s and two backoffs (0.5 s, then 1 s at jitter 0.5): 4.5 s in all.
    assert.equal((duration!.value as { sum: number }).sum, 4.5);
    const requests = await s.t.points(OTEL_METRICS.requests.name);
    assert.deepEqual(
      requests.map((p) => [p.attributes['http.response.status_code'], p.value]),
      [
        [429, 1],
        [500, 1],
        [200, 1],
      ],
    );
    assert.deepEqual(
      (await s.t.points(OTEL_METRICS.rateLimited.name)).map((p) => p.value),
      [1],
    );
  });

  test('cache lookups are counted as hit or miss', async () => {
    const s = setup();
    s.job.cacheLookup(true);
    s.job.cacheLookup(false);
    s.job.cacheLookup(false);
    const points = await s.t.points(OTEL_METRICS.cacheLookups.name);
    assert.deepEqual(
      points.map((p) => [p.attributes['result'], p.value]),
      [
        ['hit', 1],
        ['miss', 2],
      ],
    );
  });
});
