import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadPipeline } from '../src/pipeline/registry.ts';
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

/**
 * The requests of a vocabulary run over `input`, as bench/bare-client.ts sends them: each item's
 * analyze body, and the cards body around its prompt (which holds the analysis the bare client gets).
 */
function bareRequests(words: string[], dir: string): string {
  const pipeline = loadPipeline('vocabulary', repoRoot, {
    sourceLanguage: 'Korean',
    targetLanguage: 'English',
  });
  const [analyze, cards] = pipeline.stages;
  if (!analyze || !cards) throw new Error('the vocabulary pipeline has two stages');
  const body = (messages: unknown, responseFormat: unknown): string =>
    JSON.stringify({
      model: 'bench',
      messages,
      response_format: responseFormat,
      temperature: 0.3,
      max_tokens: 1500,
    });
  const marker = '\u0000PROMPT\u0000';
  const cardsMessages = cards.buildMessages({ item: { term: 'x', context: {} }, previous: { analyze: {} } });
  const cardsBody = body(
    cardsMessages.map((m) => (m.role === 'user' ? { role: 'user', content: marker } : m)),
    cards.responseFormat,
  );
  const quoted = JSON.stringify(marker);
  const file = join(dir, 'bare-requests.json');
  writeFileSync(
    file,
    JSON.stringify({
      analyze: words.map((term) => ({
        term,
        body: body(
          analyze.buildMessages({ item: { term, context: {} }, previous: {} }),
          analyze.responseFormat,
        ),
      })),
      cards: {
        head: cardsBody.slice(0, cardsBody.indexOf(quoted)),
        tail: cardsBody.slice(cardsBody.indexOf(quoted) + quoted.length),
      },
    }),
  );
  return file;
}

/** Wall time of the bare client sending a vocabulary run's requests (start-up and exit included). */
async function bareRun(url: string, requests: string, concurrency: number): Promise<number> {
  const started = performance.now();
  const r = await new Promise<number | null>((resolve) => {
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'bench/bare-client.ts'), url, requests, String(concurrency)],
      {
        stdio: 'ignore',
      },
    );
    child.on('exit', resolve);
  });
  if (r !== 0) throw new Error(`bare client failed (${r})`);
  return performance.now() - started;
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
    note: 'target <= 1.5',
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

  // The machine's speed varies between runs: three fresh runs each, taken in turns with the bare
  // client against the same provider process, the median reported with the range.
  const slow = await startMock(['--latency', '50']);
  try {
    const runs: Summary[] = [];
    const bare: number[] = [];
    for (let i = 0; i < 3; i++) {
      const words = Array.from({ length: 2500 }, (_, w) => `단어b${i}${w}`);
      const dir = tempDir('fc-bench-');
      bare.push(await bareRun(slow.url, bareRequests(words, dir), 50));
      const input = join(dir, 'words.txt');
      writeFileSync(input, `${words.join('\n')}\n`);
      runs.push(await processRun(input, tempDir('fc-bench-'), slow.url, ['--concurrency', '50']));
    }
    const ideal = ((runs[0]?.requests ?? 0) * 50) / 50;
    const ratios = runs.map((r) => r.wallMs / ideal);
    const s = runs[ratios.indexOf(median(ratios))] ?? runs[0]!;
    const vsBare = runs.map((r, i) => r.wallMs / (bare[i] ?? Number.NaN));
    rows.push({
      name: 'throughput, 50 ms provider, concurrency 50 (2,500 items, 5,000 requests)',
      value: median(ratios),
      unit: 'x ideal',
      note:
        `median of 3 (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}); ` +
        `wall ${(s.wallMs / 1000).toFixed(2)} s incl. start-up (run itself ${(s.durationMs / 1000).toFixed(2)} s) ` +
        `vs ideal ${(ideal / 1000).toFixed(2)} s; peak RSS ${median(runs.map((r) => r.peakRssMb))} MiB (target <= 100)`,
    });
    rows.push({
      name: 'the same run against a bare node:http keep-alive client (same requests, same provider)',
      value: median(vsBare),
      unit: 'x bare',
      note:
        `median of 3 (${Math.min(...vsBare).toFixed(3)}-${Math.max(...vsBare).toFixed(3)}); bare client ` +
        `${(median(bare) / 1000).toFixed(2)} s = ${(median(bare) / ideal).toFixed(3)} x ideal (target <= 1.05)`,
    });
  } finally {
    slow.stop();
  }
  return rows;
};
