import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_EXPORT_TIMEOUT_MS, otelConfig, parseKeyValues } from '../src/telemetry/otel-config.ts';
import { chatTarget } from '../src/telemetry/target.ts';

describe('otelConfig', () => {
  test('without any OTEL_* variable telemetry is off', () => {
    assert.deepEqual(otelConfig({}), { enabled: false });
    assert.deepEqual(otelConfig({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), {
      enabled: false,
    });
  });

  test('a base endpoint exports both signals over http/protobuf to <endpoint>/v1/<signal>', () => {
    const c = otelConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });
    assert.ok(c.enabled);
    assert.equal(c.serviceName, 'flashcards');
    assert.deepEqual(c.traces, {
      exporter: 'otlp',
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: {},
      timeoutMs: DEFAULT_EXPORT_TIMEOUT_MS,
    });
    assert.equal(c.metrics?.exporter === 'otlp' && c.metrics.url, 'http://collector:4318/v1/metrics');
    assert.deepEqual(c.warnings, []);
  });

  test('a trailing slash on the base endpoint is not doubled', () => {
    const c = otelConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example/otlp/' });
    assert.ok(c.enabled);
    assert.equal(c.traces?.exporter === 'otlp' && c.traces.url, 'https://otel.example/otlp/v1/traces');
  });

  test('a per-signal endpoint is used as given and turns on that signal only', () => {
    const c = otelConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/custom/path' });
    assert.ok(c.enabled);
    assert.equal(c.traces?.exporter === 'otlp' && c.traces.url, 'http://t:4318/custom/path');
    assert.equal(c.metrics, undefined);
  });

  test('per-signal endpoint, protocol and headers win over the general ones', () => {
    const c = otelConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://m:9090/api/v1/otlp/v1/metrics',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc,x-team=cards',
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'x-team=metrics',
    });
    assert.ok(c.enabled);
    assert.deepEqual(c.traces, {
      exporter: 'otlp',
      url: 'http://base:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: { authorization: 'Bearer abc', 'x-team': 'cards' },
      timeoutMs: DEFAULT_EXPORT_TIMEOUT_MS,
    });
    assert.deepEqual(c.metrics, {
      exporter: 'otlp',
      url: 'http://m:9090/api/v1/otlp/v1/metrics',
      protocol: 'http/json',
      headers: { authorization: 'Bearer abc', 'x-team': 'metrics' },
      timeoutMs: DEFAULT_EXPORT_TIMEOUT_MS,
    });
  });

  test('OTEL_*_EXPORTER picks console or none per signal, and otlp without an endpoint goes to localhost', () => {
    const c = otelConfig({ OTEL_TRACES_EXPORTER: 'console', OTEL_METRICS_EXPORTER: 'otlp' });
    assert.ok(c.enabled);
    assert.deepEqual(c.traces, { exporter: 'console' });
    assert.equal(c.metrics?.exporter === 'otlp' && c.metrics.url, 'http://localhost:4318/v1/metrics');
    const none = otelConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_METRICS_EXPORTER: 'none' });
    assert.ok(none.enabled);
    assert.equal(none.metrics, undefined);
    assert.equal(none.traces?.exporter, 'otlp');
  });

  test('OTEL_SDK_DISABLED=true turns everything off', () => {
    assert.deepEqual(
      otelConfig({ OTEL_SDK_DISABLED: 'TRUE', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
      {
        enabled: false,
      },
    );
    assert.equal(
      otelConfig({ OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c' }).enabled,
      true,
    );
  });

  test('service name from OTEL_SERVICE_NAME, else from the resource attributes', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=cron,deployment.environment=prod',
    };
    const a = otelConfig(env);
    assert.ok(a.enabled);
    assert.equal(a.serviceName, 'cron');
    assert.deepEqual(a.resource, { 'service.name': 'cron', 'deployment.environment': 'prod' });
    const b = otelConfig({ ...env, OTEL_SERVICE_NAME: 'fc-bar' });
    assert.ok(b.enabled);
    assert.equal(b.serviceName, 'fc-bar');
  });

  test('unsupported values fall back to the defaults with a warning that names them', () => {
    const c = otelConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TIMEOUT: 'soon',
      OTEL_METRICS_EXPORTER: 'prometheus',
    });
    assert.ok(c.enabled);
    assert.equal(c.traces?.exporter === 'otlp' && c.traces.protocol, 'http/protobuf');
    assert.equal(c.metrics, undefined);
    assert.deepEqual(c.warnings, [
      'OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported (http/protobuf or http/json); using http/protobuf',
      `OTEL_EXPORTER_OTLP_TIMEOUT must be a number of milliseconds > 0, got soon; using ${DEFAULT_EXPORT_TIMEOUT_MS}`,
      'OTEL_METRICS_EXPORTER=prometheus is not supported (otlp, console or none); metrics are not exported',
    ]);
  });

  test('OTEL_EXPORTER_OTLP_TIMEOUT and OTEL_METRIC_EXPORT_INTERVAL are read in milliseconds', () => {
    const c = otelConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c',
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
      OTEL_METRIC_EXPORT_INTERVAL: '15000',
    });
    assert.ok(c.enabled);
    assert.equal(c.traces?.exporter === 'otlp' && c.traces.timeoutMs, 1000);
    assert.equal(c.metricIntervalMs, 15000);
  });
});

describe('parseKeyValues', () => {
  test('reads percent-encoded pairs and skips the malformed ones', () => {
    assert.deepEqual(parseKeyValues(' a=1 , b = x%2Cy ,novalue,=nokey, c=%E0%A4%A'), {
      a: '1',
      b: 'x,y',
      c: '%E0%A4%A',
    });
    assert.deepEqual(parseKeyValues(undefined), {});
  });
});

describe('chatTarget', () => {
  test('a preset on its own host is named as the GenAI conventions name it', () => {
    assert.deepEqual(
      chatTarget({
        provider: 'openai',
        baseUrl: 'https://api.openai.com/v1',
        model: 'gpt-4o-mini',
        presetBaseUrl: 'https://api.openai.com/v1',
      }),
      { provider: 'openai', model: 'gpt-4o-mini', serverAddress: 'api.openai.com', serverPort: 443 },
    );
  });

  test('a base URL elsewhere (a gateway, a test server) is named by its host', () => {
    assert.deepEqual(
      chatTarget({
        provider: 'openrouter',
        baseUrl: 'http://127.0.0.1:40123/v1',
        model: 'm',
        presetBaseUrl: 'https://openrouter.ai/api/v1',
      }),
      { provider: '127.0.0.1', model: 'm', serverAddress: '127.0.0.1', serverPort: 40123 },
    );
  });

  test('the offline mock has no port', () => {
    assert.deepEqual(
      chatTarget({ provider: 'mock', baseUrl: 'mock://local', model: 'mock', presetBaseUrl: 'mock://local' }),
      { provider: 'mock', model: 'mock', serverAddress: 'local' },
    );
  });
});
