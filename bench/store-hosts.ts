/**
 * Issue 15's scenario at full size, on the real clock: two "hosts" (the built CLI with separate
 * data directories, nothing shared but one Redis) run the same 200-item batch at once against a
 * provider allowing 1,200 requests/min, answering in 0.5-1.5 s, with `--concurrency 16` each; then
 * the same at 1-3 s with the concurrency steered. Reports the share of the limit used (requests
 * over the time from the first request to the last exit, against 1,200/min), 429s, and requests
 * paid beyond one per job. Starts its own redis-server; needs `npm run build` and redis-server.
 */
import { join } from 'node:path';
import { cliEnv, startCli, tempDir } from '../test/support/cli.ts';
import { startMockServer } from '../test/support/mock-server.ts';
import { hasRedis, startRedisServer } from '../test/support/redis-server.ts';
import { koreanWords } from '../test/support/word-lists.ts';
import type { BenchRow } from './types.ts';

const RPM = 1200;
const ITEMS = 200;
const STAGES = 2;

async function twoHosts(redisUrl: string, latencyMs: [number, number], extra: string[], label: string) {
  const server = await startMockServer({ seed: 3, rpm: RPM, latencyMs });
  try {
    const dir = tempDir('fc-bench-hosts-');
    const input = koreanWords(dir, ITEMS).path;
    const store = `${redisUrl}?prefix=${label}:`;
    const runs = ['a', 'b'].map((h) => {
      const home = join(dir, h);
      const env = cliEnv({
        FLASHCARDS_HOME: home,
        FLASHCARDS_API_KEY: 'sk-bench-0123456789',
        FLASHCARDS_BASE_URL: server.url,
        FLASHCARDS_STORE: store,
      });
      return startCli(['process', input, '-o', join(dir, `${h}.tsv`), '--rpm', String(RPM), ...extra], {
        env,
      }).done;
    });
    const results = await Promise.all(runs);
    const exited = Date.now();
    const chat = server.requests.filter((q) => q.path.endsWith('/chat/completions'));
    const first = Math.min(...chat.map((q) => q.at));
    const minutes = (exited - first) / 60_000;
    const ok = chat.filter((q) => q.status === 200).length;
    return {
      exits: results.map((r) => r.code).join(','),
      used: chat.length / (minutes * RPM),
      share429: chat.filter((q) => q.status === 429).length / Math.max(1, chat.length),
      repeats: ok - ITEMS * STAGES,
      seconds: (exited - first) / 1000,
    };
  } finally {
    await server.close();
  }
}

export async function bench(): Promise<BenchRow[]> {
  if (!hasRedis) return [{ name: 'two hosts on one Redis: skipped, no redis-server', value: 0, unit: '' }];
  const redis = await startRedisServer();
  try {
    const rows: BenchRow[] = [];
    for (const [label, latency, extra] of [
      ['fixed16', [500, 1500], ['--concurrency', '16']],
      ['steered', [1000, 3000], []],
    ] as const) {
      const o = await twoHosts(redis.url, [...latency], [...extra], label);
      const what = `two hosts, one ${ITEMS}-item batch, ${RPM} RPM, ${latency[0] / 1000}-${latency[1] / 1000} s, ${
        extra.length ? '--concurrency 16 each' : 'concurrency steered'
      }`;
      rows.push({
        name: `${what}: of the limit`,
        value: o.used,
        unit: 'ratio',
        note: `exits ${o.exits}; ${o.seconds.toFixed(1)} s from first request to last exit`,
      });
      rows.push({ name: `${what}: 429 share`, value: o.share429, unit: 'ratio' });
      rows.push({ name: `${what}: requests paid twice`, value: o.repeats, unit: 'requests' });
    }
    return rows;
  } finally {
    await redis.stop();
  }
}
