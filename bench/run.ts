import type { Bench, BenchRow } from './types.ts';

/** `npm run bench`: every module's figures, printed as one table. Pass names to run only some. */
const suites: Record<string, () => Promise<{ bench: Bench }>> = {
  pipeline: () => import('./pipeline.ts'),
  limiter: () => import('./limiter.ts'),
  cache: () => import('./cache.ts'),
  breaker: () => import('./breaker.ts'),
  limits: () => import('./limits.ts'),
  concurrency: () => import('./concurrency.ts'),
  output: () => import('./output.ts'),
  // The shared store (--store redis://): each store's hot operations on Redis against SQLite, and
  // the rate 1, 3 and 6 processes admit on one Redis. Each starts its own redis-server.
  'store-limiter': () => import('./store-limiter.ts'),
  'store-breaker': () => import('./store-breaker.ts'),
  'store-batches': () => import('./store-batches.ts'),
  'store-cache': () => import('./store-cache.ts'),
  'store-hosts': () => import('./store-hosts.ts'),
  'batch-api': () => import('./batch-api.ts'),
};

const only = process.argv.slice(2);
for (const [name, load] of Object.entries(suites)) {
  if (only.length && !only.includes(name)) continue;
  process.stdout.write(`\n== ${name} ==\n`);
  let rows: BenchRow[];
  try {
    rows = await (await load()).bench();
  } catch (e) {
    process.stdout.write(`  failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
    continue;
  }
  for (const r of rows) {
    const value = Math.abs(r.value) >= 100 ? r.value.toFixed(0) : r.value.toPrecision(3);
    process.stdout.write(
      `  ${r.name.padEnd(72)} ${value.padStart(10)} ${r.unit}${r.note ? `  (${r.note})` : ''}\n`,
    );
  }
}
