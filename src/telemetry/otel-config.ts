/**
 * OpenTelemetry's standard environment variables, read into a plain value: whether a run exports
 * traces and metrics, where, and how. Pure (no SDK is imported here): a run without these
 * variables never loads the SDK, and this module decides that.
 * https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/
 * https://opentelemetry.io/docs/specs/otel/protocol/exporter/
 */

export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** Where one signal (traces or metrics) goes. */
export type SignalTarget =
  | {
      exporter: 'otlp';
      url: string;
      protocol: OtlpProtocol;
      headers: Record<string, string>;
      timeoutMs: number;
    }
  /** One JSON line per span or metric on stderr (stdout carries the command's result). */
  | { exporter: 'console' };

export type OtelConfig =
  | { enabled: false }
  | {
      enabled: true;
      /** OTEL_SERVICE_NAME, else service.name from OTEL_RESOURCE_ATTRIBUTES, else `flashcards`. */
      serviceName: string;
      resource: Record<string, string>;
      traces: SignalTarget | undefined;
      metrics: SignalTarget | undefined;
      /** How often metrics are sent during a long run (OTEL_METRIC_EXPORT_INTERVAL). */
      metricIntervalMs: number;
      /** Settings that were not understood and what was used instead, one sentence each. */
      warnings: string[];
    };

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_ENDPOINT = 'http://localhost:4318';
/**
 * An export gives up after this long unless OTEL_EXPORTER_OTLP_TIMEOUT says otherwise (the
 * standard's default is 10 s): the flush at the end of a short run must not hold its exit up
 * for long when the collector is down or hangs.
 */
export const DEFAULT_EXPORT_TIMEOUT_MS = 2500;
const DEFAULT_METRIC_INTERVAL_MS = 60_000;

function value(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

/**
 * `key1=value1,key2=value2` (W3C Baggage-like, values percent-encoded), as OTEL_RESOURCE_ATTRIBUTES
 * and OTEL_EXPORTER_OTLP_HEADERS are written. Pairs without `=` or a key are skipped.
 */
export function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const pair of text.split(',')) {
    const at = pair.indexOf('=');
    if (at <= 0) continue;
    const key = decode(pair.slice(0, at).trim());
    if (key) out[key] = decode(pair.slice(at + 1).trim());
  }
  return out;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** The URL of one signal: the per-signal endpoint as given, or the base endpoint plus `v1/<signal>`. */
function signalUrl(env: Env, signal: 'traces' | 'metrics'): string {
  const own = value(env, `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`);
  if (own) return own;
  const base = value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') ?? DEFAULT_ENDPOINT;
  return `${base.endsWith('/') ? base : `${base}/`}v1/${signal}`;
}

function protocolOf(env: Env, signal: 'TRACES' | 'METRICS', warnings: string[]): OtlpProtocol {
  const name = value(env, `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`)
    ? `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const given = value(env, name);
  if (given === undefined || given === 'http/protobuf') return 'http/protobuf';
  if (given === 'http/json') return 'http/json';
  warnings.push(`${name}=${given} is not supported (http/protobuf or http/json); using http/protobuf`);
  return 'http/protobuf';
}

function timeoutOf(env: Env, signal: 'TRACES' | 'METRICS', warnings: string[]): number {
  const name = value(env, `OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`)
    ? `OTEL_EXPORTER_OTLP_${signal}_TIMEOUT`
    : 'OTEL_EXPORTER_OTLP_TIMEOUT';
  const given = value(env, name);
  if (given === undefined) return DEFAULT_EXPORT_TIMEOUT_MS;
  const ms = Number(given);
  if (Number.isFinite(ms) && ms > 0) return ms;
  warnings.push(
    `${name} must be a number of milliseconds > 0, got ${given}; using ${DEFAULT_EXPORT_TIMEOUT_MS}`,
  );
  return DEFAULT_EXPORT_TIMEOUT_MS;
}

/**
 * One signal's exporter: OTEL_<SIGNAL>_EXPORTER when set (`otlp`, `console` or `none`; a list
 * takes its first name), else OTLP when an endpoint is configured, else nothing.
 */
function target(env: Env, signal: 'traces' | 'metrics', warnings: string[]): SignalTarget | undefined {
  const upper = signal === 'traces' ? 'TRACES' : 'METRICS';
  const chosenVar = `OTEL_${upper}_EXPORTER`;
  const chosen = value(env, chosenVar)?.split(',')[0]?.trim().toLowerCase();
  const endpoint =
    value(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') ?? value(env, `OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`);
  let exporter: 'otlp' | 'console' | undefined;
  if (chosen === undefined) exporter = endpoint ? 'otlp' : undefined;
  else if (chosen === 'otlp' || chosen === 'console') exporter = chosen;
  else if (chosen !== 'none') {
    warnings.push(
      `${chosenVar}=${chosen} is not supported (otlp, console or none); ${signal} are not exported`,
    );
  }
  if (exporter === undefined) return undefined;
  if (exporter === 'console') return { exporter };
  return {
    exporter,
    url: signalUrl(env, signal),
    protocol: protocolOf(env, upper, warnings),
    headers: {
      ...parseKeyValues(value(env, 'OTEL_EXPORTER_OTLP_HEADERS')),
      ...parseKeyValues(value(env, `OTEL_EXPORTER_OTLP_${upper}_HEADERS`)),
    },
    timeoutMs: timeoutOf(env, upper, warnings),
  };
}

/** What the environment asks of telemetry; `{ enabled: false }` when it asks for nothing. */
export function otelConfig(env: Env): OtelConfig {
  if (value(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return { enabled: false };
  const warnings: string[] = [];
  const traces = target(env, 'traces', warnings);
  const metrics = target(env, 'metrics', warnings);
  if (!traces && !metrics) return { enabled: false };
  const resource = parseKeyValues(value(env, 'OTEL_RESOURCE_ATTRIBUTES'));
  const interval = Number(value(env, 'OTEL_METRIC_EXPORT_INTERVAL') ?? DEFAULT_METRIC_INTERVAL_MS);
  return {
    enabled: true,
    serviceName: value(env, 'OTEL_SERVICE_NAME') ?? resource['service.name'] ?? 'flashcards',
    resource,
    traces,
    metrics,
    metricIntervalMs: Number.isFinite(interval) && interval > 0 ? interval : DEFAULT_METRIC_INTERVAL_MS,
    warnings,
  };
}
