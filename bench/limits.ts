/**
 * Issues 3 and 5 at full size: the built CLI (`npm run build` first) against the mock provider.
 *
 * Measures, each scenario with its own provider and data directory (they run side by side, so the
 * whole suite takes about as long as its longest scenario, ~45 s):
 * - told the limit: provider 600 RPM, 1 s burst, 100 +/- 50 ms latency, x-ratelimit-* headers;
 *   100 items x 2 stages, `--rpm 600`;
 * - not told the limit: provider 300 RPM (the same, with and without headers), no `--rpm`;
 * - two processes, one data directory and key, provider 600 RPM, 50 items each, `--rpm 600`;
 * - flaky: 10% 500s, 3% resets, 5% truncated JSON, 1% hangs, `--timeout 3s`, 80 items, default
 *   retry settings (1 s base, 30 s cap, 6 attempts);
 * - outage: provider 600 RPM, `--rpm 600`, 100 items; every request 503 for 8 s from 5 s into the
 *   run. Breaker defaults (30 s window, ratio 0.5, 10 calls) except a 10 s break (default 30 s),
 *   so the run ends within the bench budget; retry defaults.
 * - kill -9 (issue 6): 150 items, `--concurrency 8`, killed half-way, then run again; and two runs
 *   of 60 items, `--concurrency 4` each, one killed once 30 requests were seen: the requests the
 *   survivors sent again (answers lost in flight or in the last 20 ms group-commit window).
 *
 * The e2e tests (test/limits.e2e, resilience.e2e, durable.e2e) assert only what holds on any
 * machine; every timing-dependent figure they used to assert is printed here against its target.
 *
 * Duration runs from the first request the provider saw to the last CLI exit (process start-up is
 * not the limiter's doing); ideal = successful requests / RPM; utilisation = ideal / duration.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CliResult, cliEnv, runCli, startCli, tempDir } from '../test/support/cli.ts';
import {
  type MockOptions,
  type MockServer,
  type RecordedRequest,
  startMockServer,
} from '../test/support/mock-server.ts';
import type { Bench, BenchRow } from './types.ts';

const API_KEY = 'sk-bench-limits-0123456789';
const latencyMs: [number, number] = [50, 150];

interface Summary {
  items: { total: number; succeeded: number; failed: number; pending: number };
  requests: number;
}

interface Run {
  home: string;
  env: NodeJS.ProcessEnv;
  /** The `process` command line for input `i`. */
  args(i: number): string[];
}

function prepare(server: MockServer, inputs: number[], extra: string[], config?: object): Run {
  const home = tempDir('fc-bench-');
  const env = cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: API_KEY, FLASHCARDS_BASE_URL: server.url });
  const files = inputs.map((n, i) => {
    const file = join(home, `in${i}.txt`);
    writeFileSync(file, `${Array.from({ length: n }, (_, w) => `in${i}-${w}`).join('\n')}\n`);
    return file;
  });
  const head: string[] = [];
  if (config) {
    const rc = join(home, '.flashcardrc');
    writeFileSync(rc, JSON.stringify(config));
    head.push('--config', rc);
  }
  return {
    home,
    env,
    args: (i) => [
      ...head,
      'process',
      files[i] ?? '',
      '-o',
      join(home, `out${i}.jsonl`),
      '--format',
      'jsonl',
      '--model',
      'bench',
      '--json',
      ...extra,
    ],
  };
}

function chat(server: MockServer): RecordedRequest[] {
  return server.requests.filter((r) => r.path.endsWith('/chat/completions'));
}

function summary(r: CliResult): Summary | undefined {
  try {
    return JSON.parse(r.stdout) as Summary;
  } catch {
    return undefined;
  }
}

function itemsText(results: CliResult[]): string {
  return results
    .map((r) => {
      const s = summary(r);
      return `exit ${r.code}, ${s ? `${s.items.succeeded}/${s.items.total} items` : 'no summary'}`;
    })
    .join('; ');
}

async function withServer<T>(opts: MockOptions, fn: (s: MockServer) => Promise<T>): Promise<T> {
  const server = await startMockServer({ seed: 3, latencyMs, ...opts });
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

/** One or more CLIs at once against a provider enforcing `rpm`: duration vs ideal, 429 share, utilisation. */
async function limitScenario(
  label: string,
  provider: MockOptions & { rpm: number },
  inputs: number[],
  extra: string[],
  targets: { maxRatio?: number; max429: number; minUtilisation?: number },
): Promise<BenchRow[]> {
  return withServer(provider, async (server) => {
    const run = prepare(server, inputs, extra);
    const started = Date.now();
    let lastExit = 0;
    const results = await Promise.all(
      inputs.map((_, i) =>
        startCli(run.args(i), { env: run.env }).done.then((r) => {
          lastExit = Math.max(lastExit, Date.now());
          return r;
        }),
      ),
    );
    const requests = chat(server);
    const ok = requests.filter((r) => r.status === 200).length;
    const r429 = requests.filter((r) => r.status === 429).length;
    const first = Math.min(...requests.map((r) => r.at));
    const durationMs = lastExit - first;
    const idealMs = (ok / provider.rpm) * 60_000;
    const pct429 = requests.length === 0 ? 0 : (100 * r429) / requests.length;
    const utilisation = idealMs / durationMs;
    const verdict = (pass: boolean): string => (pass ? 'PASS' : 'FAIL');
    const rows: BenchRow[] = [];
    if (targets.maxRatio !== undefined) {
      rows.push({
        name: `${label}: duration / ideal`,
        value: durationMs / idealMs,
        unit: 'ratio',
        note: `${verdict(durationMs / idealMs <= targets.maxRatio)} <= ${targets.maxRatio.toFixed(3)}; ${(durationMs / 1000).toFixed(1)} s vs ${(idealMs / 1000).toFixed(1)} s ideal, ${((lastExit - started) / 1000).toFixed(1)} s wall; ${itemsText(results)}`,
      });
    }
    rows.push({
      name: `${label}: answered 429`,
      value: pct429,
      unit: '%',
      note: `${verdict(pct429 <= targets.max429)} <= ${targets.max429}%; ${r429} of ${requests.length} requests`,
    });
    rows.push({
      name: `${label}: utilisation`,
      value: utilisation,
      unit: 'ratio',
      note: `${targets.minUtilisation === undefined ? 'no target' : `${verdict(utilisation >= targets.minUtilisation)} >= ${targets.minUtilisation}`}; ${ok} successes in ${(durationMs / 1000).toFixed(1)} s; ${itemsText(results)}`,
    });
    return rows;
  });
}

async function flakyScenario(): Promise<BenchRow[]> {
  const items = 80;
  const provider = { error500: 0.1, reset: 0.03, truncated: 0.05, hang: 0.01, seed: 1 };
  return withServer(provider, async (server) => {
    const run = prepare(server, [items], ['--timeout', '3s']);
    const started = Date.now();
    const r = await runCli(run.args(0), { env: run.env });
    const requests = chat(server);
    const successes = requests.filter((q) => q.status === 200 && q.fault === undefined).length;
    const s = summary(r);
    const pass = r.code === 0 && s?.items.succeeded === items && requests.length <= 2 * successes;
    return [
      {
        name: 'flaky provider, 80 items: requests / successes',
        value: successes === 0 ? 0 : requests.length / successes,
        unit: 'ratio',
        note: `${pass ? 'PASS' : 'FAIL'} (exit 0, every item, <= 2); ${requests.length} requests, ${successes} successes, ${itemsText([r])}, ${((Date.now() - started) / 1000).toFixed(1)} s`,
      },
    ];
  });
}

async function outageScenario(): Promise<BenchRow[]> {
  const items = 100;
  const startAfterMs = 5000;
  const outageMs = 8000;
  return withServer({ rpm: 600, seed: 9 }, async (server) => {
    const run = prepare(server, [items], ['--rpm', '600'], { breaker: { breakDuration: '10s' } });
    const started = Date.now();
    const cli = startCli(run.args(0), { env: run.env });
    while (chat(server).length === 0) {
      if (Date.now() - started > 10_000) throw new Error('outage scenario: the run sent nothing in 10 s');
      await sleep(10);
    }
    await sleep(startAfterMs);
    server.set({ outage: true });
    const outageStart = Date.now();
    const seen: string[] = [];
    while (Date.now() - outageStart < outageMs - 1000) {
      const st = await runCli(['breaker', 'status', '--json'], { env: run.env });
      const state = st.code === 0 ? (JSON.parse(st.stdout) as { state: string }).state : `exit ${st.code}`;
      seen.push(state);
      await sleep(500);
    }
    while (Date.now() - outageStart < outageMs) await sleep(10);
    server.set({ outage: false });
    const outageEnd = Date.now();
    const first = await cli.done;
    const results = [first];
    if (first.code === 3) results.push(await runCli(run.args(0), { env: run.env }));
    const last = results[results.length - 1] as CliResult;
    const during = chat(server).filter((q) => q.at >= outageStart && q.at < outageEnd).length;
    const history = await runCli(['breaker', 'history', '--json'], { env: run.env });
    const opened = (
      JSON.parse(history.stdout) as { transitions: { at: string; from: string; to: string }[] }
    ).transitions
      .filter((t) => t.from === 'closed' && t.to === 'open')
      .map((t) => Date.parse(t.at))
      .filter((at) => at >= outageStart)
      .sort((a, b) => a - b)[0];
    const completed = last.code === 0 && summary(last)?.items.failed === 0;
    return [
      {
        name: '8 s outage: requests sent during the outage',
        value: during,
        unit: 'requests',
        note: `${during <= 36 ? 'PASS' : 'FAIL'} <= 36 (a few dozen)`,
      },
      {
        name: '8 s outage: breaker opened after the outage began',
        value: opened === undefined ? Number.NaN : (opened - outageStart) / 1000,
        unit: 's',
        note: `${opened !== undefined && opened < outageEnd ? 'PASS' : 'FAIL'} within the outage; \`breaker status --json\` from another process saw: ${[...new Set(seen)].join(', ')} (${seen.filter((x) => x === 'open').length}/${seen.length} polls open)`,
      },
      {
        name: '8 s outage: batch completes after recovery',
        value: (Date.now() - started) / 1000,
        unit: 's',
        note: `${completed ? 'PASS' : 'FAIL'}; ${results.length === 1 ? 'one run' : 'exit 3, then a re-run'}: ${itemsText(results)}`,
      },
    ];
  });
}

/** Chat requests sent more than once (the same body), over everything the provider saw. */
function repeated(server: MockServer): number {
  const keys = chat(server).map((r) => JSON.stringify(r.body));
  return keys.length - new Set(keys).size;
}

async function killScenario(): Promise<BenchRow[]> {
  const items = 150;
  return withServer({ seed: 11 }, async (server) => {
    const run = prepare(server, [items], ['--concurrency', '8']);
    const first = startCli(run.args(0), { env: run.env });
    await server.until(() => chat(server).length >= items);
    first.child.kill('SIGKILL');
    await first.done;
    const killedAt = chat(server).length;
    const again = await runCli(run.args(0), { env: run.env });
    const n = repeated(server);
    const complete = again.code === 0 && summary(again)?.items.succeeded === items;
    return [
      {
        name: 'kill -9 half-way, 150 items, --concurrency 8: requests repeated by the rerun',
        value: n,
        unit: 'requests',
        note: `${n <= 16 && complete ? 'PASS' : 'FAIL'} <= 16; killed after ${killedAt} requests; ${itemsText([again])}`,
      },
    ];
  });
}

async function killOneOfTwoScenario(): Promise<BenchRow[]> {
  const items = 60;
  return withServer({ seed: 11 }, async (server) => {
    const run = prepare(server, [items], ['--concurrency', '4', '--rpm', '60000']);
    const a = startCli(run.args(0), { env: run.env });
    const b = startCli(run.args(0), { env: run.env });
    await server.until(() => chat(server).length >= 30);
    a.child.kill('SIGKILL');
    await a.done;
    const rb = await b.done;
    const n = repeated(server);
    const complete = rb.code === 0 && summary(rb)?.items.succeeded === items;
    return [
      {
        name: 'one of two runs killed -9, 60 items, --concurrency 4 each: requests repeated',
        value: n,
        unit: 'requests',
        note: `${n <= 8 && complete ? 'PASS' : 'FAIL'} <= 8 (the killed run's 4 in flight and its last commit window); survivor: ${itemsText([rb])}`,
      },
    ];
  });
}

export const bench: Bench = async () => {
  const parts = await Promise.all([
    limitScenario('told the limit: 600 RPM, 100 items, --rpm 600', { rpm: 600 }, [100], ['--rpm', '600'], {
      maxRatio: 1 / 0.9,
      max429: 1,
    }),
    limitScenario('not told the limit: provider 300 RPM with headers, 100 items', { rpm: 300 }, [100], [], {
      max429: 10,
      minUtilisation: 0.75,
    }),
    limitScenario(
      'not told, no headers (AIMD only): provider 300 RPM, 100 items',
      { rpm: 300, sendRateLimitHeaders: false },
      [100],
      [],
      { max429: 10, minUtilisation: 0.75 },
    ),
    limitScenario(
      'two processes, one key: 600 RPM, 50 + 50 items, --rpm 600',
      { rpm: 600 },
      [50, 50],
      ['--rpm', '600'],
      { max429: 2, minUtilisation: 0.85 },
    ),
    flakyScenario(),
    outageScenario(),
    killScenario(),
    killOneOfTwoScenario(),
  ]);
  return parts.flat();
};
