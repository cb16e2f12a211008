import { AsyncLocalStorage } from 'node:async_hooks';
import { ROOT_CONTEXT, type Span, trace } from '@opentelemetry/api';
import {
  type DataPoint,
  MeterProvider,
  MetricReader,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { createInstruments, type Instruments } from '../../src/telemetry/instruments.ts';

/** A reader that collects when asked, never on a timer: a test reads the metrics when it wants. */
class OnDemandReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** In-memory traces and metrics for telemetry unit tests: spans as they end, metrics on collect(). */
export function memoryTelemetry() {
  const spans = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }).getTracer(
    'test',
  );
  const reader = new OnDemandReader();
  const instruments: Instruments = createInstruments(
    new MeterProvider({ readers: [reader] }).getMeter('test'),
  );
  const root: Span = tracer.startSpan('root', {}, ROOT_CONTEXT);
  const parent = trace.setSpan(ROOT_CONTEXT, root);
  return {
    spans,
    tracer,
    root,
    parent: () => parent,
    instruments,
    current: new AsyncLocalStorage<Span>(),
    /** The data points of one metric by name ([] when it has none). */
    async points(name: string): Promise<DataPoint<unknown>[]> {
      const { resourceMetrics } = (await reader.collect()) as { resourceMetrics: ResourceMetrics };
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const m of scope.metrics)
          if (m.descriptor.name === name) return m.dataPoints as DataPoint<unknown>[];
      }
      return [];
    },
  };
}
