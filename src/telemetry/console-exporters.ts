import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/**
 * OTEL_TRACES_EXPORTER=console / OTEL_METRICS_EXPORTER=console: one JSON line per span or metric,
 * written to stderr. The SDK's own console exporters print to stdout, which carries the command's
 * result (a deck with `-o -`, the `--json` summary).
 */

const ms = (t: [number, number]): number => t[0] * 1000 + t[1] / 1e6;

export function consoleSpanExporter(write: (text: string) => void): SpanExporter {
  return {
    export(spans: ReadableSpan[], done) {
      for (const s of spans) {
        const line = {
          span: s.name,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId,
          start: new Date(ms(s.startTime)).toISOString(),
          durationMs: Math.round(ms(s.duration) * 1000) / 1000,
          status: s.status.code,
          attributes: s.attributes,
          events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
        };
        write(`${JSON.stringify(line)}\n`);
      }
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  };
}

export function consoleMetricExporter(write: (text: string) => void): PushMetricExporter {
  return {
    export(metrics: ResourceMetrics, done) {
      for (const scope of metrics.scopeMetrics) {
        for (const m of scope.metrics) {
          const points = m.dataPoints.map((p) => ({ attributes: p.attributes, value: p.value }));
          write(`${JSON.stringify({ metric: m.descriptor.name, unit: m.descriptor.unit, points })}\n`);
        }
      }
      done({ code: 0 });
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}
