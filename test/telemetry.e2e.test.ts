import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, repoRoot, runCli, tempDir } from './support/cli.ts';
import { type MockServer, startMockServer } from './support/mock-server.ts';
import { type OtlpReceiver, startOtlpReceiver } from './support/otlp-receiver.ts';

const API_KEY = 'sk-test-otel-0123456789abcdef';

/** The first `n` terms of the 200-word fixture, as a CSV file of their own. */
function words(dir: string, n: number): string {
  const lines = readFileSync(join(repoRoot, 'fixtures', 'korean-200.csv'), 'utf8')
    .trim()
    .split(/\r?\n/);
  const path = join(dir, `words-${n}.csv`);
  writeFileSync(path, `${lines.slice(0, n + 1).join('\n')}\n`);
  return path;
}

/** A port nothing listens on: bound, then closed again. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('flashcards process with OpenTelemetry (OTLP/HTTP)', () => {
  let provider: MockServer;
  let receiver: OtlpReceiver;
  before(async () => {
    provider = await startMockServer({ seed: 16, error500: 0.1 });
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await provider.close();
    await receiver.close();
  });

  test('one trace per run: a root span, one chat span per model call whose tokens add up, and the GenAI metrics', async () => {
    const home = tempDir();
    provider.clear();
    const r = await runCli(['process', words(home, 30), '-o', join(home, 'deck.tsv'), '--json'], {
      env: cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: API_KEY,
        FLASHCARDS_BASE_URL: provider.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'fc-bar',
      }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning: telemetry/);
    const summary = JSON.parse(r.stdout) as { batchId: string; log: string; retries: number };
    // Some requests failed with a 500 and were retried inside their call's span.
    assert.ok(provider.stats.byStatus[500], 'the provider answered some requests with a 500');
    assert.ok(summary.retries > 0);

    const spans = receiver.spans();
    const chats = spans.filter((s) => s.attributes['gen_ai.operation.name'] === 'chat');
    assert.equal(chats.length, 60, '30 items x 2 stages');
    const roots = spans.filter((s) => s.name === 'flashcards process');
    assert.equal(roots.length, 1);
    const root = roots[0]!;
    assert.equal(root.parentSpanId, undefined);
    assert.equal(root.attributes['flashcards.batch.id'], summary.batchId);
    assert.equal(root.attributes['flashcards.run.status'], 'done');
    assert.equal(root.attributes['flashcards.items.done'], 30);
    assert.equal(root.resource['service.name'], 'fc-bar');
    for (const s of chats) {
      assert.equal(s.traceId, root.traceId);
      assert.equal(s.parentSpanId, root.spanId);
      assert.equal(s.name, `chat ${s.attributes['gen_ai.request.model']}`);
      assert.equal(s.kind, 3, 'SPAN_KIND_CLIENT');
      assert.equal(s.resource['service.name'], 'fc-bar');
    }
    const tokens = chats.reduce(
      (n, s) =>
        n +
        Number(s.attributes['gen_ai.usage.input_tokens']) +
        Number(s.attributes['gen_ai.usage.output_tokens']),
      0,
    );
    assert.equal(tokens, provider.stats.tokensServed);
    const resent = chats.reduce((n, s) => n + Number(s.attributes['http.request.resend_count']), 0);
    assert.equal(resent, provider.requests.length - 60, 'every request past the first of a call is a resend');
    assert.equal(new Set(spans.map((s) => s.traceId)).size, 1, 'all in one trace');

    const metricNames = new Set(receiver.metrics().map((m) => m.name));
    assert.ok(metricNames.has('gen_ai.client.token.usage'));
    assert.ok(metricNames.has('gen_ai.client.operation.duration'));
    assert.ok(metricNames.has('flashcards.items'));

    // The run's log names the trace on every record.
    const records = readFileSync(summary.log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { traceId?: string });
    assert.ok(records.length > 0);
    for (const rec of records) assert.equal(rec.traceId, root.traceId);
    // No prompt or answer text reaches the collector.
    const sent = receiver.exports.map((e) => e.raw.toString('utf8')).join('\n');
    assert.ok(!sent.includes('내가'), 'no input term in the telemetry');
  });

  test('the collector on a closed port: the run exits 0 and says so in one warning line', async () => {
    const home = tempDir();
    const port = await closedPort();
    const r = await runCli(['process', words(home, 10), '-o', join(home, 'deck.tsv'), '--quiet'], {
      env: cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: API_KEY,
        FLASHCARDS_BASE_URL: provider.url,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      }),
    });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      /^warning: telemetry was not delivered \(http:\/\/127\.0\.0\.1:\d+\/v1\/\w+: .+\); the run is not affected$/,
    );
  });

  test('without OTEL_* variables the log carries no trace ids', async () => {
    const home = tempDir();
    const r = await runCli(['process', words(home, 3), '-o', join(home, 'deck.tsv'), '--json'], {
      env: cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: provider.url }),
    });
    assert.equal(r.code, 0, r.stderr);
    const log = readFileSync((JSON.parse(r.stdout) as { log: string }).log, 'utf8');
    assert.doesNotMatch(log, /traceId|spanId/);
  });
});
