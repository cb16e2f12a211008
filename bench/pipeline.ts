import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { binPath, cliEnv, repoRoot, runCli, tempDir } from '../test/support/cli.ts';
import type { Bench, BenchRow } from './types.ts';

interface MockProcess {
  url: string;
  stop(): void;
}

/** The mock provider in its own process, so its CPU is not counted against the CLI's event loop. */
async function startMock(args: string[]): Promise<MockProcess> {
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'test/support/mock-server-main.ts'), '--port', '0', '--no-record', ...args],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve) => lines.once('line', resolve));
  return { url: (JSON.parse(first) as { url: string }).url, stop: () => child.kill('SIGTERM') };
}

function wordList(n: number, salt: string): string {
  const dir = tempDir('fc-bench-');
  const path = join(dir, `words-${n}.txt`);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`단어${salt}${i}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

interface Summary {
  items: { succeeded: number; total: number };
  requests: number;
  durationMs: number;
  peakRssMb: number;
  cacheHits: number;
  /** Wall time of the whole command, start-up and exit included (what a user waits for). */
  wallMs: number;
}

async function processRun(input: string, home: string, url: string, extra: string[]): Promise<Summary> {
  const started = performance.now();
  const r = await runCli(
    ['process', input, '-o', join(home, 'deck.tsv'), '--json', '--model', 'bench', ...extra],
    {
      env: cliEnv({ FLASHCARDS_HOME: home, FLASHCARDS_API_KEY: 'bench-key', FLASHCARDS_BASE_URL: url }),
    },
  );
  if (r.code !== 0) throw new Error(`bench run failed (${r.code}): ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as Omit<Summary, 'wallMs'>), wallMs: performance.now() - started };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

function timeCommand(args: string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    spawnSync(process.execPath, args, { stdio: 'ignore' });
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(times);
}

export const bench: Bench = async () => {
  const rows: BenchRow[] = [];

  const bare = timeCommand(['-e', '0'], 15);
  const version = timeCommand([binPath, '--version'], 15);
  rows.push({ name: 'start-up: node -e 0', value: bare, unit: 'ms' });
  rows.push({ name: 'start-up: flashcards --version', value: version, unit: 'ms' });
  rows.push({
    name: 'start-up ratio (--version / bare node)',
    value: version / bare,
    unit: 'x',
    note: 'target <= 2.5',
  });

  const fast = await startMock([]);
  try {
    const input = wordList(2000, 'a');
    const home = tempDir('fc-bench-');
    const s = await processRun(input, home, fast.url, ['--concurrency', '50']);
    rows.push({
      name: 'pipeline, uncached, 0 ms provider, concurrency 50 (2,000 items)',
      value: (s.items.succeeded / s.durationMs) * 1000,
      unit: 'items/s',
      note: `${s.requests} requests, ${((s.requests / s.durationMs) * 1000).toFixed(0)} req/s, peak RSS ${s.peakRssMb} MiB`,
    });

    const big = wordList(10_000, 'c');
    const bigHome = tempDir('fc-bench-');
    await processRun(big, bigHome, fast.url, ['--concurrency', '64']);
    const cached = await processRun(big, bigHome, fast.url, ['--concurrency', '64', '--new']);
    rows.push({
      name: 'cached re-run (10,000 items, fresh batch, every answer from cache)',
      value: (cached.items.succeeded / cached.durationMs) * 1000,
      unit: 'items/s',
      note: `${cached.cacheHits} cache hits, ${cached.requests} requests, peak RSS ${cached.peakRssMb} MiB`,
    });
  } finally {
    fast.stop();
  }

  // The machine's speed varies between runs: three fresh runs, the median reported with the range.
  const slow = await startMock(['--latency', '50']);
  try {
    const runs: Summary[] = [];
    for (let i = 0; i < 3; i++) {
      const input = wordList(2500, `b${i}`);
      runs.push(await processRun(input, tempDir('fc-bench-'), slow.url, ['--concurrency', '50']));
    }
    const ideal = ((runs[0]?.requests ?? 0) * 50) / 50;
    const ratios = runs.map((r) => r.wallMs / ideal);
    const s = runs[ratios.indexOf(median(ratios))] ?? runs[0]!;
    rows.push({
      name: 'throughput, 50 ms provider, concurrency 50 (2,500 items, 5,000 requests)',
      value: median(ratios),
      unit: 'x ideal',
      note:
        `median of 3 (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}); ` +
        `wall ${(s.wallMs / 1000).toFixed(2)} s incl. start-up (run itself ${(s.durationMs / 1000).toFixed(2)} s) ` +
        `vs ideal ${(ideal / 1000).toFixed(2)} s (target <= 1.11); ` +
        `peak RSS ${median(runs.map((r) => r.peakRssMb))} MiB (target < 100)`,
    });
  } finally {
    slow.stop();
  }
  return rows;
};
