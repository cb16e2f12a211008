/**
 * Runs the mock provider as its own process, for benchmarks and manual tries:
 *   node test/support/mock-server-main.ts --port 0 --latency 50 --latency-max 150 --rpm 600 --error500 0.1
 * Prints {"url": "http://127.0.0.1:PORT/v1"} on stdout once listening; on SIGTERM/SIGINT prints the
 * final stats as JSON on stderr and exits once its sockets are closed.
 */
import { parseArgs } from 'node:util';
import { type MockOptions, startMockServer } from './mock-server.ts';

const { values } = parseArgs({
  options: {
    help: { type: 'boolean', default: false },
    port: { type: 'string', default: '0' },
    latency: { type: 'string', default: '0' },
    'latency-max': { type: 'string' },
    rpm: { type: 'string' },
    tpm: { type: 'string' },
    'burst-seconds': { type: 'string' },
    error500: { type: 'string' },
    error503: { type: 'string' },
    reset: { type: 'string' },
    truncated: { type: 'string' },
    hang: { type: 'string' },
    parallel: { type: 'string' },
    'invalid-schema': { type: 'string' },
    'no-rate-headers': { type: 'boolean', default: false },
    'require-auth': { type: 'boolean', default: false },
    'no-record': { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    'no-batch-api': { type: 'boolean', default: false },
    'batch-complete-after': { type: 'string' },
    'batch-expire-after': { type: 'string' },
    'batch-error-rate': { type: 'string' },
    'batch-shuffle': { type: 'boolean', default: false },
    'batch-enqueued-token-limit': { type: 'string' },
  },
  strict: true,
});

if (values.help) {
  process.stdout.write(
    'usage: node test/support/mock-server-main.ts [--port 0] [--latency ms] [--latency-max ms] [--rpm n] [--tpm n]\n' +
      '  [--burst-seconds s] [--error500 p] [--error503 p] [--reset p] [--truncated p] [--hang p] [--invalid-schema p]\n' +
      '  [--parallel n (work on n requests at once, the rest wait in line)]\n' +
      '  [--no-rate-headers] [--require-auth] [--no-record] [--seed n]\n' +
      '  [--no-batch-api] [--batch-complete-after ms] [--batch-expire-after ms] [--batch-error-rate p]\n' +
      '  [--batch-shuffle] [--batch-enqueued-token-limit tokens]\n' +
      'p = probability per request (0-1). Prints {"url": ...} once listening; stats on SIGTERM.\n',
  );
  process.exit(0);
}

function num(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0, got "${text}"`);
  return n;
}

const latency = num('latency', values.latency) ?? 0;
const latencyMax = num('latency-max', values['latency-max']);
const options: MockOptions = {
  port: num('port', values.port) ?? 0,
  seed: num('seed', values.seed) ?? 1,
  latencyMs: latencyMax === undefined ? latency : [latency, Math.max(latency, latencyMax)],
  rpm: num('rpm', values.rpm) ?? 0,
  tpm: num('tpm', values.tpm) ?? 0,
  burstSeconds: num('burst-seconds', values['burst-seconds']) ?? 1,
  error500: num('error500', values.error500) ?? 0,
  error503: num('error503', values.error503) ?? 0,
  reset: num('reset', values.reset) ?? 0,
  truncated: num('truncated', values.truncated) ?? 0,
  hang: num('hang', values.hang) ?? 0,
  parallel: num('parallel', values.parallel) ?? 0,
  invalidSchema: num('invalid-schema', values['invalid-schema']) ?? 0,
  sendRateLimitHeaders: !values['no-rate-headers'],
  requireAuth: values['require-auth'],
  // A long benchmark would otherwise keep every request body in memory.
  record: !values['no-record'],
  batchApi: !values['no-batch-api'],
  batchCompleteAfterMs: num('batch-complete-after', values['batch-complete-after']) ?? 0,
  batchExpireAfterMs: num('batch-expire-after', values['batch-expire-after']) ?? 0,
  batchErrorRate: num('batch-error-rate', values['batch-error-rate']) ?? 0,
  batchShuffle: values['batch-shuffle'],
  batchEnqueuedTokenLimit: num('batch-enqueued-token-limit', values['batch-enqueued-token-limit']) ?? 0,
};

const server = await startMockServer(options);
process.stdout.write(`{"url": ${JSON.stringify(server.url)}}\n`);

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`${JSON.stringify(server.stats)}\n`);
  void server.close();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
