/**
 * Issue 19 at full size, on the real clock: the built CLI (`npm run build` first) against the mock
 * provider, with no --concurrency, so the run steers how many requests it keeps in flight.
 *
 * - 600 RPM (1 s burst), 100 items (200 requests), latency uniform in [L/2, 3L/2] for L = 0.1, 1,
 *   3 and 10 s, `--rpm 600`; and L = 3 s learning the limit from the headers (no --rpm);
 * - a local server with no limit that works on 4 requests at once (500 ms each), 50 items;
 * - a 600,000 TPM provider that books prompt + max_tokens up front (1 s burst), 100 items, told
 *   (--tpm) and learning it;
 * - peak RSS with 256 requests in flight (`--concurrency 256`, 5 s answers, 2 KB of context a row).
 *
 * "Of the limit" is what the limit allows over the run's duration (first request to exit):
 * (requests - burst) / rate + the mean latency (the last answer's wait), as the issue counts it
 * ("200 requests ... where the limit allows ~22 s"). The scenarios run side by side, each with its
 * own provider, so the suite takes about as long as the longest (~45 s).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEnv, startCli, tempDir } from '../test/support/cli.ts';
import { type MockOptions, startMockServer } from '../test/support/mock-server.ts';
import type { BenchRow } from './types.ts';

interface Summary {
  items: { total: number; succeeded: number };
  requests: number;
  peakRssMb: number;
  concurrency: { final: number; peak: number; pinned: boolean };
}

interface Outcome {
  exit: number | null;
  summary: Summary | undefined;
  /** First request the provider saw to the CLI's exit. */
  durationMs: number;
  requests: number;
  answered429: number;
  maxInFlight: number;
  tokensBooked: number;
}

async function scenario(
  provider: MockOptions,
  items: number,
  args: string[],
  context = '',
): Promise<Outcome> {
  const server = await startMockServer({ seed: 5, ...provider });
  try {
    const home = tempDir('fc-bench-');
    const input = join(home, 'words.csv');
    const rows = Array.from({ length: items }, (_, i) => `낱말${i},${context}`);
    writeFileSync(input, `term,note\n${rows.join('\n')}\n`);
    const env = cliEnv({
      FLASHCARDS_HOME: home,
      FLASHCARDS_API_KEY: 'sk-bench-0123456789',
      FLASHCARDS_BASE_URL: server.url,
    });
    const r = await startCli(
      ['process', input, '-o', join(home, 'out.jsonl'), '--json', '--model', 'bench', ...args],
      {
        env,
      },
    ).done;
    const exited = Date.now();
    const chat = server.requests.filter((q) => q.path.endsWith('/chat/completions'));
    const first = Math.min(...chat.map((q) => q.at));
    let summary: Summary | undefined;
    try {
      summary = JSON.parse(r.stdout) as Summary;
    } catch {
      summary = undefined;
    }
    return {
      exit: r.code,
      summary,
      durationMs: exited - first,
      requests: chat.length,
      answered429: chat.filter((q) => q.status === 429).length,
      maxInFlight: server.stats.maxInFlight,
      tokensBooked: server.stats.tokensBooked,
    };
  } finally {
    await server.close();
  }
}

const spread = (ms: number): [number, number] => [ms / 2, (ms * 3) / 2];

function outcomeNote(o: Outcome): string {
  const s = o.summary;
  return (
    `${(o.durationMs / 1000).toFixed(1)} s, ${o.requests} requests, ${o.answered429} answered 429, ` +
    `peak steered ${s?.concurrency.peak ?? '?'} (provider saw ${o.maxInFlight} at once), ` +
    `exit ${o.exit}, ${s ? `${s.items.succeeded}/${s.items.total}` : 'no summary'} items`
  );
}

/** Share of a 600 RPM limit used: what the limit allows for these requests over the duration. */
function ofLimit(o: Outcome, latencyMs: number): number {
  const ok = o.requests - o.answered429;
  return ((Math.max(0, ok - 10) / 10) * 1000 + latencyMs) / o.durationMs;
}

export async function bench(): Promise<BenchRow[]> {
  const latencies = [100, 1000, 3000, 10_000];
  const context = 'x'.repeat(2000);
  const [told, learned, local, tpmTold, tpmLearned, memory] = await Promise.all([
    Promise.all(latencies.map((l) => scenario({ rpm: 600, latencyMs: spread(l) }, 100, ['--rpm', '600']))),
    scenario({ rpm: 600, latencyMs: spread(3000) }, 100, []),
    scenario({ latencyMs: 500, parallel: 4, sendRateLimitHeaders: false }, 50, []),
    scenario({ tpm: 600_000, latencyMs: [1000, 3000] }, 100, ['--tpm', '600000']),
    scenario({ tpm: 600_000, latencyMs: [1000, 3000] }, 100, []),
    scenario({ latencyMs: 5000 }, 400, ['--concurrency', '256'], context),
  ]);
  const rows: BenchRow[] = latencies.map((l, i) => {
    const o = told[i] as Outcome;
    return {
      name: `600 RPM told (--rpm), latency ${l / 1000} s +-50%: share of the limit`,
      value: ofLimit(o, l),
      unit: 'x',
      note: `real clock; ${outcomeNote(o)}`,
    };
  });
  rows.push({
    name: '600 RPM learned from headers, latency 3 s +-50%: share of the limit',
    value: ofLimit(learned, 3000),
    unit: 'x',
    note: `real clock; ${outcomeNote(learned)}`,
  });
  rows.push({
    name: 'local server, 4 at once x 500 ms, no limit, 50 items: share of its capacity',
    value: (local.requests * 500) / 4 / local.durationMs,
    unit: 'x',
    note: `capacity 8 requests/s; ${outcomeNote(local)}`,
  });
  for (const [label, o] of [
    ['told (--tpm)', tpmTold],
    ['learned from headers', tpmLearned],
  ] as const) {
    rows.push({
      name: `600,000 TPM booked up front, ${label}, 100 items: share of the token budget`,
      value: o.tokensBooked / ((o.durationMs / 60_000) * 600_000),
      unit: 'x',
      note: `${o.tokensBooked} tokens booked; ${((100 * o.answered429) / Math.max(1, o.requests)).toFixed(1)}% 429s; ${outcomeNote(o)}`,
    });
  }
  rows.push({
    name: 'peak RSS with 256 requests in flight (5 s answers, 2 KB of context a row)',
    value: memory.summary?.peakRssMb ?? Number.NaN,
    unit: 'MiB',
    note: `target <= 150; provider saw ${memory.maxInFlight} at once; exit ${memory.exit}`,
  });
  return rows;
}
