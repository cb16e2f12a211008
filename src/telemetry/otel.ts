import { AsyncLocalStorage } from 'node:async_hooks';
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { defaultResource, type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Clock } from '../core/clock.ts';
import { errorMessage, isFlashcardsError, oneLine } from '../core/errors.ts';
import type { EventSink } from '../core/events.ts';
import type { JobTelemetry } from '../job/ports.ts';
import { type ChatTarget, chatTelemetry, errorType } from './chat-span.ts';
import { consoleMetricExporter, consoleSpanExporter } from './console-exporters.ts';
import { eventMetrics } from './event-metrics.ts';
import { createInstruments } from './instruments.ts';
import type { OtelConfig, SignalTarget } from './otel-config.ts';

type Enabled = Extract<OtelConfig, { enabled: true }>;

export interface RunTelemetryOptions {
  config: Enabled;
  clock: Clock;
  /** When the run started (the root span's start). */
  startedAt: number;
  /** Where the console exporters write (stderr: stdout carries the command's result). */
  write: (text: string) => void;
  version: string;
}

/** What a run knows once its batch is open: names the root span and sets up the job's telemetry. */
export interface RunDescription {
  batchId: string;
  runId: string;
  pipeline: string;
  lastStage: string;
  target: ChatTarget;
}

export interface RunTelemetry {
  describe(run: RunDescription): { job: JobTelemetry; events: EventSink | undefined };
  /** The trace (and the span a record was written under) for the run's log records. */
  correlate(): { traceId: string; spanId: string };
  /** The run's end: its status, exit code and counts on the root span. */
  finish(end: { status: string; exitCode: number; counts: Record<string, number> }): void;
  /** The run ended with an error instead (a failure before or after its items). */
  fail(e: unknown): void;
  /**
   * Ends the root span and sends what is left, waiting `budgetMs` at most. Resolves with what
   * went wrong with the exports during the run or now (one sentence), or undefined.
   */
  shutdown(budgetMs: number): Promise<string | undefined>;
}

/** Where a signal goes, for the warning when it could not be delivered. */
function where(t: SignalTarget): string {
  return t.exporter === 'console' ? 'stderr' : t.url;
}

/** Records the first failed export of an exporter (the SDK itself only tells its diagnostics logger). */
function watched<T extends SpanExporter | PushMetricExporter>(
  exporter: T,
  target: SignalTarget,
  failed: (why: string) => void,
): T {
  const send = exporter.export.bind(exporter) as (
    items: unknown,
    done: (r: { code: number; error?: Error }) => void,
  ) => void;
  (exporter as { export: typeof send }).export = (items, done) =>
    send(items, (result) => {
      // ExportResultCode.SUCCESS is 0 (@opentelemetry/core, not a dependency of ours).
      if (result.code !== 0) {
        failed(`${where(target)}: ${result.error ? oneLine(errorMessage(result.error)) : 'export failed'}`);
      }
      done(result);
    });
  return exporter;
}

/**
 * A request of the exporters may not outlive the exit's flush budget: the flush stops waiting
 * then, and an open request would hold the process up for the rest of OTEL_EXPORTER_OTLP_TIMEOUT.
 */
const MAX_EXPORT_MS = 2500;

async function spanExporter(t: SignalTarget, write: (text: string) => void): Promise<SpanExporter> {
  if (t.exporter === 'console') return consoleSpanExporter(write);
  const options = { url: t.url, headers: t.headers, timeoutMillis: Math.min(t.timeoutMs, MAX_EXPORT_MS) };
  const { OTLPTraceExporter } =
    t.protocol === 'http/json'
      ? await import('@opentelemetry/exporter-trace-otlp-http')
      : await import('@opentelemetry/exporter-trace-otlp-proto');
  return new OTLPTraceExporter(options);
}

async function metricExporter(t: SignalTarget, write: (text: string) => void): Promise<PushMetricExporter> {
  if (t.exporter === 'console') return consoleMetricExporter(write);
  const options = { url: t.url, headers: t.headers, timeoutMillis: Math.min(t.timeoutMs, MAX_EXPORT_MS) };
  const { OTLPMetricExporter } =
    t.protocol === 'http/json'
      ? await import('@opentelemetry/exporter-metrics-otlp-http')
      : await import('@opentelemetry/exporter-metrics-otlp-proto');
  return new OTLPMetricExporter(options);
}

/**
 * Starts the run's tracer and meter providers and its root span `flashcards process`. Nothing is
 * registered globally: the run hands its tracer and instruments to the job's policies itself, and
 * the root span's context is passed explicitly to every call's span.
 */
export async function startRunTelemetry(o: RunTelemetryOptions): Promise<RunTelemetry> {
  const { config, clock } = o;
  const resource: Resource = defaultResource().merge(
    resourceFromAttributes({
      ...config.resource,
      'service.name': config.serviceName,
      'service.version': o.version,
    }),
  );
  let failure: string | undefined;
  const failed = (why: string): void => {
    failure ??= why;
  };

  let tracerProvider: BasicTracerProvider | undefined;
  if (config.traces) {
    const exporter = watched(await spanExporter(config.traces, o.write), config.traces, failed);
    tracerProvider = new BasicTracerProvider({
      resource,
      spanProcessors: [new BatchSpanProcessor(exporter)],
    });
  }
  let meterProvider: MeterProvider | undefined;
  if (config.metrics) {
    const exporter = watched(await metricExporter(config.metrics, o.write), config.metrics, failed);
    const timeout =
      config.metrics.exporter === 'otlp' ? Math.min(config.metrics.timeoutMs, MAX_EXPORT_MS) : 1000;
    meterProvider = new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: config.metricIntervalMs,
          exportTimeoutMillis: Math.min(timeout, config.metricIntervalMs),
        }),
      ],
    });
  }
  const scope = { name: 'flashcards', version: o.version };
  // Without an exporter for traces, spans are still made (their ids name the run in its log) by a
  // provider with no processor: nothing leaves the process.
  const tracer = (tracerProvider ?? new BasicTracerProvider({ resource })).getTracer(
    scope.name,
    scope.version,
  );
  const instruments = meterProvider
    ? createInstruments(meterProvider.getMeter(scope.name, scope.version))
    : undefined;

  const root: Span = tracer.startSpan(
    'flashcards process',
    { kind: SpanKind.INTERNAL, startTime: o.startedAt },
    ROOT_CONTEXT,
  );
  const rootContext: Context = trace.setSpan(ROOT_CONTEXT, root);
  const current = new AsyncLocalStorage<Span>();
  let ended = false;
  const end = (attributes: Attributes, error?: string): void => {
    if (ended) return;
    ended = true;
    root.setAttributes(attributes);
    if (error !== undefined) root.setStatus({ code: SpanStatusCode.ERROR, message: error });
    root.end(clock.now());
  };

  return {
    describe(run) {
      root.setAttributes({
        'flashcards.batch.id': run.batchId,
        'flashcards.run.id': run.runId,
        'flashcards.pipeline': run.pipeline,
        'gen_ai.request.model': run.target.model,
        'gen_ai.provider.name': run.target.provider,
      });
      const job = chatTelemetry({
        tracer,
        parent: () => rootContext,
        clock,
        target: run.target,
        instruments,
        current,
      });
      return {
        job,
        events: instruments ? eventMetrics(instruments, { lastStage: run.lastStage }) : undefined,
      };
    },
    correlate() {
      const span = current.getStore() ?? root;
      return { traceId: root.spanContext().traceId, spanId: span.spanContext().spanId };
    },
    finish({ status, exitCode, counts }) {
      const attributes: Attributes = { 'flashcards.run.status': status, 'process.exit.code': exitCode };
      for (const [name, n] of Object.entries(counts)) attributes[`flashcards.items.${name}`] = n;
      end(attributes, exitCode === 0 ? undefined : status);
    },
    fail(e) {
      end(
        { 'error.type': errorType(e), ...(isFlashcardsError(e) ? { 'process.exit.code': e.exitCode } : {}) },
        isFlashcardsError(e) ? e.kind : errorType(e),
      );
    },
    async shutdown(budgetMs) {
      end({ 'flashcards.run.status': 'unknown' });
      let timer: NodeJS.Timeout | undefined;
      // A collector that is down or hangs holds the exit up by the budget at most; the exporters'
      // own timeouts (OTEL_EXPORTER_OTLP_TIMEOUT, 2.5 s by default) end their requests.
      const outOfTime = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), budgetMs);
      });
      const flushed = Promise.allSettled([tracerProvider?.shutdown(), meterProvider?.shutdown()]).then(
        (results) => {
          for (const r of results) if (r.status === 'rejected') failed(oneLine(errorMessage(r.reason)));
          return 'done' as const;
        },
      );
      const outcome = await Promise.race([flushed, outOfTime]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        const to = [config.traces, config.metrics].filter((t) => t !== undefined).map(where);
        failed(`${[...new Set(to)].join(', ')}: no answer within ${budgetMs / 1000} s`);
      }
      return failure;
    },
  };
}
