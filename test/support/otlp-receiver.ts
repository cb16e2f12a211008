import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One export received: JSON bodies parsed, protobuf ones kept as bytes with their content type. */
export interface OtlpExport {
  path: string;
  contentType: string;
  body: unknown;
  raw: Buffer;
}

/** An OTLP/JSON attribute value, read into a plain value (int64 values come as strings). */
type AnyValue = {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
};
type KeyValue = { key: string; value: AnyValue };

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
}

export interface ReceivedMetric {
  name: string;
  unit: string;
  resource: Record<string, string | number | boolean>;
}

function plain(v: AnyValue): string | number | boolean {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  return '';
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, plain(kv.value)]));
}

export interface OtlpReceiver {
  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:41234. */
  url: string;
  exports: OtlpExport[];
  /** Every span of every JSON trace export, in arrival order. */
  spans(): ReceivedSpan[];
  /** Every metric of every JSON metric export. */
  metrics(): ReceivedMetric[];
  close(): Promise<void>;
}

/**
 * A tiny OTLP/HTTP receiver on 127.0.0.1 for end-to-end tests: POST /v1/traces and /v1/metrics
 * are recorded and answered 200 `{}` (an empty partial-success answer); anything else is 404.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const exports: OtlpExport[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      if (req.method !== 'POST' || (path !== '/v1/traces' && path !== '/v1/metrics')) {
        res.writeHead(404).end();
        return;
      }
      const raw = Buffer.concat(chunks);
      const contentType = String(req.headers['content-type'] ?? '');
      let body: unknown = raw;
      if (contentType.includes('json')) body = JSON.parse(raw.toString('utf8')) as unknown;
      exports.push({ path, contentType, body, raw });
      const json = contentType.includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : Buffer.alloc(0));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const jsonBodies = (path: string): Record<string, unknown>[] =>
    exports
      .filter((e) => e.path === path && e.contentType.includes('json'))
      .map((e) => e.body as Record<string, unknown>);
  return {
    url: `http://127.0.0.1:${port}`,
    exports,
    spans() {
      type Body = {
        resourceSpans?: {
          resource?: { attributes?: KeyValue[] };
          scopeSpans?: {
            spans?: {
              traceId: string;
              spanId: string;
              parentSpanId?: string;
              name: string;
              kind: number;
              attributes?: KeyValue[];
            }[];
          }[];
        }[];
      };
      return jsonBodies('/v1/traces').flatMap((b) =>
        ((b as Body).resourceSpans ?? []).flatMap((rs) =>
          (rs.scopeSpans ?? []).flatMap((ss) =>
            (ss.spans ?? []).map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              kind: s.kind,
              attributes: attributes(s.attributes),
              resource: attributes(rs.resource?.attributes),
            })),
          ),
        ),
      );
    },
    metrics() {
      type Body = {
        resourceMetrics?: {
          resource?: { attributes?: KeyValue[] };
          scopeMetrics?: { metrics?: { name: string; unit?: string }[] }[];
        }[];
      };
      return jsonBodies('/v1/metrics').flatMap((b) =>
        ((b as Body).resourceMetrics ?? []).flatMap((rm) =>
          (rm.scopeMetrics ?? []).flatMap((sm) =>
            (sm.metrics ?? []).map((m) => ({
              name: m.name,
              unit: m.unit ?? '',
              resource: attributes(rm.resource?.attributes),
            })),
          ),
        ),
      );
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
