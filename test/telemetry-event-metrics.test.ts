import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RunEvent } from '../src/core/events.ts';
import { eventMetrics } from '../src/telemetry/event-metrics.ts';
import { OTEL_METRICS } from '../src/telemetry/metric-names.ts';
import { memoryTelemetry } from './support/otel-memory.ts';

const timing = { durationMs: 10, requestMs: 5, waitMs: 5 };
const succeeded = (item: number, stage: string): RunEvent => ({
  type: 'job_succeeded',
  batchId: 'b',
  item,
  stage,
  ...timing,
  attempts: 1,
  cached: false,
  tokens: 10,
  promptTokens: 6,
  completionTokens: 4,
});

describe('events -> metrics', () => {
  test('items count once when their last stage succeeds or any stage fails; pending goes down', async () => {
    const t = memoryTelemetry();
    const sink = eventMetrics(t.instruments, { lastStage: 'cards' });
    const events: RunEvent[] = [
      {
        type: 'run_started',
        batchId: 'b',
        input: 'w.csv',
        total: 5,
        remaining: 4,
        resumed: true,
        model: 'm',
        baseUrl: 'http://x',
        concurrency: 'steered',
      },
      succeeded(1, 'analyze'),
      succeeded(1, 'cards'),
      succeeded(2, 'analyze'),
      {
        type: 'job_failed',
        batchId: 'b',
        item: 2,
        stage: 'cards',
        ...timing,
        attempts: 3,
        errorKind: 'server',
        message: 'HTTP 500',
      },
      succeeded(3, 'analyze'),
    ];
    for (const e of events) sink.emit(e);
    assert.deepEqual(
      (await t.points(OTEL_METRICS.items.name)).map((p) => [p.attributes['outcome'], p.value]),
      [
        ['done', 1],
        ['failed', 1],
      ],
    );
    assert.deepEqual(
      (await t.points(OTEL_METRICS.queuePending.name)).map((p) => p.value),
      [2],
    );
  });

  test('retries and breaker transitions are counted; the breaker gauge holds the last state per key', async () => {
    const t = memoryTelemetry();
    const sink = eventMetrics(t.instruments, { lastStage: 'cards' });
    const retry: RunEvent = {
      type: 'retry_scheduled',
      batchId: 'b',
      item: 1,
      stage: 'cards',
      attempt: 1,
      delayMs: 500,
      errorKind: 'server',
      message: 'HTTP 500',
    };
    sink.emit(retry);
    sink.emit(retry);
    sink.emit({ type: 'breaker_transition', key: 'k1', from: 'closed', to: 'open', cause: 'failures' });
    sink.emit({ type: 'breaker_transition', key: 'k1', from: 'open', to: 'half_open', cause: 'probe' });
    assert.deepEqual(
      (await t.points(OTEL_METRICS.retries.name)).map((p) => p.value),
      [2],
    );
    assert.deepEqual(
      (await t.points(OTEL_METRICS.breakerTransitions.name)).map((p) => [p.attributes['to'], p.value]),
      [
        ['open', 1],
        ['half_open', 1],
      ],
    );
    assert.deepEqual(
      (await t.points(OTEL_METRICS.breakerState.name)).map((p) => [p.attributes['key'], p.value]),
      [['k1', 1]],
    );
  });
});
