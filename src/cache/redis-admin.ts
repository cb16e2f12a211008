import type { Clock } from '../core/clock.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import {
  type CacheAdmin,
  type CacheStats,
  type ClearFilter,
  type Deleted,
  type EntrySummary,
  type EntryWithBody,
  KEPT_RUNS,
  RECENT_RUNS,
} from './admin.ts';
import {
  type CacheKeyNames,
  type CacheScripts,
  cacheKeyNames,
  DEFAULT_PREFIX,
  describeStore,
  SUMMARY_FIELDS,
  scanTargets,
  storeError,
  storeNow,
  timeArg,
  withCacheScripts,
} from './redis-scripts.ts';
import { byteOrder, isExpired, matchesClear, summarise } from './rules.ts';
import type { CacheRun } from './store.ts';

export interface RedisCacheAdminOptions {
  /** As given to redisResponseCache (default `fc:`). */
  prefix?: string | undefined;
  /** Tests only: the time for live/expired and older-than, instead of the server's TIME. */
  clock?: Clock | undefined;
  /** How `cache stats` and messages name the store (a redacted URL); default from the connection. */
  location?: string | undefined;
}

/** Keys per SCAN step, and so per batch of reads or deletes sent together. */
const SCAN_COUNT = 500;

/**
 * The `cache` commands on Redis. There is no index to ask: stats, list, show, prune and clear walk
 * the namespace with SCAN (never KEYS, which blocks the server), on every master of a cluster, and
 * read each entry's fields. Stats are counted on that walk rather than kept as counters on put:
 * Redis expires keys on its own and tells nobody, so counters would drift from the truth; an admin
 * command may take a second on a large cache. Deletes go through the delete-if script, one entry
 * each, so an entry another host rewrote since the walk saw it is judged as it now is.
 */
export function redisCacheAdmin(conn: RedisConnection, options: RedisCacheAdminOptions = {}): CacheAdmin {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  return new RedisCacheAdmin(
    conn,
    withCacheScripts(conn),
    cacheKeyNames(prefix),
    options.location ?? describeStore(conn, prefix),
    options.clock,
  );
}

class RedisCacheAdmin implements CacheAdmin {
  readonly location: string;
  readonly medium = 'memory' as const;
  readonly #conn: RedisConnection;
  readonly #scripts: CacheScripts;
  readonly #keys: CacheKeyNames;
  readonly #clock: Clock | undefined;

  constructor(
    conn: RedisConnection,
    scripts: CacheScripts,
    keys: CacheKeyNames,
    location: string,
    clock: Clock | undefined,
  ) {
    this.#conn = conn;
    this.#scripts = scripts;
    this.#keys = keys;
    this.location = location;
    this.#clock = clock;
  }

  /** MEMORY USAGE of every entry and of the run history (every field counted: SAMPLES 0). */
  footprint(): Promise<number> {
    return this.#call('measuring memory', async () => {
      // The default samples 5 fields of a hash and extrapolates, which misses most of an entry's body.
      const usage = (names: string[]) =>
        Promise.all(names.map((n) => this.#conn.memory('USAGE', n, 'SAMPLES', 0)));
      let bytes = 0;
      for await (const names of this.#pages()) for (const n of await usage(names)) bytes += n ?? 0;
      for (const n of await usage([this.#keys.runs, this.#keys.runOrder])) bytes += n ?? 0;
      return bytes;
    });
  }

  stats(recentRuns = RECENT_RUNS): Promise<CacheStats> {
    return this.#call('reading statistics', async () => {
      const now = await this.#now();
      const stats = summarise(await this.#summaries(), now);
      const rows = await this.#scripts.fcCacheRecentRuns(
        this.#keys.runOrder,
        this.#keys.runs,
        String(recentRuns),
      );
      stats.recentRuns = rows.filter((r): r is string => r !== null).map(parseRun);
      for (const run of stats.recentRuns) {
        stats.hits += run.hits;
        stats.misses += run.misses;
      }
      return stats;
    });
  }

  list(limit: number): Promise<EntrySummary[]> {
    return this.#call('listing entries', async () =>
      (await this.#summaries())
        .sort((a, b) => b.createdAt - a.createdAt || byteOrder(a.key, b.key))
        .slice(0, limit),
    );
  }

  show(prefix: string, limit: number): Promise<EntryWithBody[]> {
    return this.#call('finding entries', async () => {
      const found: EntryWithBody[] = [];
      for await (const names of this.#pages(prefix)) {
        for (const e of await this.#read(names, true)) if (e) found.push(e as EntryWithBody);
      }
      return found.sort((a, b) => byteOrder(a.key, b.key)).slice(0, limit);
    });
  }

  count(filter: ClearFilter): Promise<number> {
    return this.#call('counting entries', async () => {
      const now = await this.#now();
      return (await this.#summaries()).filter((e) => matchesClear(e, filter, now)).length;
    });
  }

  prune(): Promise<Deleted & { runsTrimmed: number }> {
    return this.#call('pruning', async () => {
      const deleted = await this.#deleteWhere((e, now) => isExpired(e.expiresAt, now), ['1', '', '', '']);
      const runsTrimmed = await this.#scripts.fcCacheTrimRuns(
        this.#keys.runOrder,
        this.#keys.runs,
        String(KEPT_RUNS),
      );
      return { ...deleted, runsTrimmed };
    });
  }

  clear(filter: ClearFilter): Promise<Deleted> {
    return this.#call('clearing', () =>
      this.#deleteWhere(
        (e, now) => matchesClear(e, filter, now),
        [
          '',
          filter.model === undefined ? '' : '1',
          filter.model ?? '',
          filter.olderThanMs === undefined ? '' : String(filter.olderThanMs),
        ],
      ),
    );
  }

  async close(): Promise<void> {}

  /**
   * Walks the entries, picks those `candidate` says match at the walk's time, and deletes each
   * through the delete-if script with `args` (the same condition, checked again on the entry as it
   * is then, at the script's time).
   */
  async #deleteWhere(
    candidate: (e: EntrySummary, now: number) => boolean,
    args: [expiredOnly: string, byModel: string, model: string, olderThanMs: string],
  ): Promise<Deleted> {
    const deleted: Deleted = { rows: 0, originalBytes: 0, storedBytes: 0 };
    const now = await this.#now();
    for await (const names of this.#pages()) {
      const picked = (await this.#read(names, false)).filter(
        (e): e is EntrySummary => e !== undefined && candidate(e, now),
      );
      const results = await Promise.all(
        picked.map((e) =>
          this.#scripts.fcCacheDeleteIf(this.#keys.entry(e.key), timeArg(this.#clock), ...args),
        ),
      );
      for (const r of results) {
        if (!r) continue;
        deleted.rows++;
        deleted.originalBytes += r[0];
        deleted.storedBytes += r[1];
      }
    }
    return deleted;
  }

  async #summaries(): Promise<EntrySummary[]> {
    const all: EntrySummary[] = [];
    for await (const names of this.#pages()) {
      for (const e of await this.#read(names, false)) if (e) all.push(e);
    }
    return all;
  }

  /** Entry names page by page, each name once (SCAN may repeat one). */
  async *#pages(prefix = ''): AsyncGenerator<string[]> {
    const seen = new Set<string>();
    const pattern = this.#keys.entries(prefix);
    for (const node of scanTargets(this.#conn)) {
      let cursor = '0';
      do {
        const [next, names] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        cursor = next;
        const fresh = names.filter((n) => !seen.has(n));
        for (const n of fresh) seen.add(n);
        if (fresh.length > 0) yield fresh;
      } while (cursor !== '0');
    }
  }

  /** The entries' fields, undefined for one that went away since SCAN saw it. */
  async #read(names: string[], withBody: boolean): Promise<(EntrySummary | EntryWithBody | undefined)[]> {
    const fields = withBody ? [...SUMMARY_FIELDS, 'body'] : [...SUMMARY_FIELDS];
    const replies = await Promise.all(names.map((n) => this.#conn.hmgetBuffer(n, ...fields)));
    return replies.map((v, i) => {
      const [model, term, stage, codec, original, stored, created, expires, body] = v;
      if (!created || !model || !codec) return undefined;
      const entry: EntrySummary = {
        key: this.#keys.keyOf(names[i]!),
        model: model.toString(),
        term: term?.toString() ?? null,
        stage: stage?.toString() ?? null,
        codec: codec.toString(),
        originalBytes: Number(original?.toString() ?? 0),
        storedBytes: Number(stored?.toString() ?? 0),
        createdAt: Number(created.toString()),
        expiresAt: expires ? Number(expires.toString()) : null,
      };
      return withBody ? { ...entry, body: body ?? Buffer.alloc(0) } : entry;
    });
  }

  #now(): Promise<number> {
    return storeNow(this.#conn, this.#clock);
  }

  async #call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (e) {
      throw storeError(this.location, what, e);
    }
  }
}

/** A run as recordRun stored it (the columns of cache.db's cache_runs). */
function parseRun(json: string): CacheRun {
  const r = JSON.parse(json) as {
    run_id: string;
    started_at: number;
    hits: number;
    misses: number;
    model: string;
  };
  return { runId: r.run_id, startedAt: r.started_at, hits: r.hits, misses: r.misses, model: r.model };
}
