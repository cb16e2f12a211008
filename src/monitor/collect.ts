import type { BatchStores } from '../batch/store.ts';
import type { CacheAdmin } from '../cache/admin.ts';
import type { Clock } from '../core/clock.ts';
import type { LimiterAdmin } from '../limiter/store.ts';
import { listBreakers } from '../resilience/breaker-admin.ts';
import type { BreakerAdmin } from '../resilience/breaker-store.ts';
import type { BatchReads, MonitorReads } from './snapshot.ts';

/**
 * One look at the shared state for `flashcards monitor`, through the stores' read methods only:
 * no lease is taken, no run registered, nothing created.
 */

/** What a look reads from: the parts of SharedState (store/state.ts) the monitor uses. */
export interface MonitorSources {
  store: { kind: 'sqlite' | 'redis'; where: string };
  batches: BatchStores;
  limiter: LimiterAdmin;
  breakers: BreakerAdmin;
  /** Undefined: the cache is not shown. */
  cache: CacheAdmin | undefined;
  /** The backend's clock (SharedState.clock). */
  clock: Clock;
}

export interface CollectOptions {
  /** The breakers' sampling window, as the runs use it (breaker.samplingWindow). */
  breakerWindowMs: number;
  /** Read the cache's statistics on this look (they cost a scan of the cache; the live view reads them less often). */
  withCache: boolean;
  /** How many failed items of each batch to read. */
  failuresShown: number;
}

const UNDER_WAY = new Set(['loading', 'running']);

export async function collectReads(src: MonitorSources, o: CollectOptions): Promise<MonitorReads> {
  const { catalog, queue, results } = src.batches;
  const overview = (await catalog.overview()).filter((b) => UNDER_WAY.has(b.batch.status));
  const batches: BatchReads[] = [];
  for (const b of overview) {
    const id = b.batch.id;
    const [counts, totals, runs, failures] = await Promise.all([
      results.counts(id),
      results.totals(id),
      queue.runs(id),
      b.failed > 0 ? results.failures(id, o.failuresShown) : Promise.resolve([]),
    ]);
    batches.push({ overview: b, counts, totals, runs, failures });
  }
  const [limiter, breakers, cache] = await Promise.all([
    src.limiter.read(),
    listBreakers(src.breakers, o.breakerWindowMs),
    o.withCache && src.cache ? src.cache.stats() : Promise.resolve(null),
  ]);
  return {
    now: src.clock.now(),
    store: src.store,
    batches,
    limiter,
    breakers,
    breakerWindowMs: o.breakerWindowMs,
    cache,
  };
}
