import type { Clock } from '../core/clock.ts';
import { FlashcardsError } from '../core/errors.ts';
import type { Random } from '../core/random.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { type Codec, writeCodec } from './codec.ts';
import {
  type CacheKeyNames,
  type CacheScripts,
  cacheKeyNames,
  DEFAULT_PREFIX,
  describeStore,
  storeError,
  timeArg,
  withCacheScripts,
} from './redis-scripts.ts';
import { checkSettings, entryLifetime, hitOf, packBody } from './rules.ts';
import type { CacheEntryInput, CacheHit, CacheRun, CacheSettings, ResponseCache } from './store.ts';

export { type RedisCacheAdminOptions, redisCacheAdmin } from './redis-admin.ts';

/**
 * How long an entry stays in Redis after its fresh expiry, for --stale-if-error: a week bridges a
 * provider's outage over a long weekend, and with the default 30-day ttl it keeps at most about a
 * quarter more entries than are live. cache.db keeps expired rows until `cache prune`; Redis drops
 * them on its own once this has passed too.
 */
export const DEFAULT_STALE_GRACE_MS = 7 * 86_400_000;

export interface RedisCacheOptions {
  settings: CacheSettings;
  /** The jitter's source, as for cache.db. */
  random: Random;
  /** Prefix of every key (default `fc:`): several teams or test runs can share one Redis apart. */
  prefix?: string | undefined;
  /** How long an expired entry stays readable with allowStale (default DEFAULT_STALE_GRACE_MS). */
  staleGraceMs?: number | undefined;
  /**
   * Tests only: the scripts take their time from this clock instead of the server's TIME (hosts'
   * clocks differ, so a real run always uses TIME). Keys still expire on Redis's own clock.
   */
  clock?: Clock | undefined;
  /** How messages name the store (a redacted URL); default: host, port and db of the connection. */
  location?: string | undefined;
}

/**
 * The response cache on a shared Redis: a term answered on host A is a hit on host B, compressed as
 * in cache.db (codec.ts) and expiring at the jittered time as the key's own expiry (plus the stale
 * grace). Each operation is one script on one key (see redis-scripts.ts), with the time from Redis.
 * Puts are written at once rather than grouped: a round trip per put is what sharing costs, and
 * another host can read the answer as soon as the put resolves.
 *
 * The connection is the caller's (limiter, breaker and batches share it): close() waits for puts in
 * flight and lets go of nothing else. Redis errors become FlashcardsErrors naming the store (exit 3).
 */
export function redisResponseCache(conn: RedisConnection, options: RedisCacheOptions): ResponseCache {
  checkSettings(options.settings);
  const grace = options.staleGraceMs ?? DEFAULT_STALE_GRACE_MS;
  if (!Number.isFinite(grace) || grace < 0) {
    throw new FlashcardsError('config', `cache stale grace must be a duration >= 0 ms, got ${grace}`);
  }
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const keys = cacheKeyNames(prefix);
  return new RedisResponseCache(withCacheScripts(conn), keys, writeCodec(options.settings.codec), {
    ...options,
    staleGraceMs: grace,
    location: options.location ?? describeStore(conn, prefix),
  });
}

class RedisResponseCache implements ResponseCache {
  readonly #scripts: CacheScripts;
  readonly #keys: CacheKeyNames;
  readonly #codec: Codec;
  readonly #options: RedisCacheOptions & { staleGraceMs: number; location: string };
  /** Puts not yet answered, so that close() leaves nothing half-written behind. */
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(
    scripts: CacheScripts,
    keys: CacheKeyNames,
    codec: Codec,
    options: RedisCacheOptions & { staleGraceMs: number; location: string },
  ) {
    this.#scripts = scripts;
    this.#keys = keys;
    this.#codec = codec;
    this.#options = options;
  }

  async get(key: string, opts: { allowStale?: boolean } = {}): Promise<CacheHit | undefined> {
    const reply = await this.#call('reading an entry', () =>
      this.#scripts.fcCacheGetBuffer(this.#keys.entry(key), timeArg(this.#options.clock)),
    );
    if (!reply) return undefined;
    const [codec, body, createdAt, expiresAt, model, now] = reply;
    return hitOf(
      {
        codec: codec.toString(),
        body,
        createdAt: Number(createdAt.toString()),
        expiresAt: expiresAt.length === 0 ? null : Number(expiresAt.toString()),
        model: model.toString(),
      },
      Number(now.toString()),
      opts.allowStale ?? false,
    );
  }

  async put(key: string, entry: CacheEntryInput): Promise<void> {
    const raw = Buffer.from(entry.body, 'utf8');
    const { codec, body } = packBody(raw, this.#codec, this.#options.settings.compressThresholdBytes);
    const lifetime = entryLifetime(this.#options.settings, this.#options.random);
    const fields: (string | Buffer)[] = [
      'model',
      entry.model,
      'codec',
      codec,
      'body',
      body,
      'original_bytes',
      String(raw.length),
      'stored_bytes',
      String(body.length),
    ];
    if (entry.term !== undefined) fields.push('term', entry.term);
    if (entry.stage !== undefined) fields.push('stage', entry.stage);
    const write = this.#call('writing an entry', () =>
      this.#scripts.fcCachePut(
        this.#keys.entry(key),
        timeArg(this.#options.clock),
        lifetime === null ? '' : String(lifetime),
        String(this.#options.staleGraceMs),
        ...fields,
      ),
    );
    this.#inFlight.add(write);
    try {
      await write;
    } finally {
      this.#inFlight.delete(write);
    }
  }

  async recordRun(run: CacheRun): Promise<void> {
    const row = JSON.stringify({
      run_id: run.runId,
      started_at: run.startedAt,
      hits: run.hits,
      misses: run.misses,
      model: run.model,
    });
    await this.#call('recording the run', () =>
      this.#scripts.fcCacheRecordRun(
        this.#keys.runOrder,
        this.#keys.runs,
        run.runId,
        String(-run.startedAt),
        row,
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#inFlight]);
  }

  async #call<T>(what: string, command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (e) {
      throw storeError(this.#options.location, what, e);
    }
  }
}
