import type { Cluster, Redis } from 'ioredis';
import { FlashcardsError, usageError } from '../core/errors.ts';
import { storeUnavailable } from '../store/health.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { classifyRedisError } from '../store/redis/guard.ts';
import { nowMsLua } from '../store/redis/lua-time.ts';

/**
 * Key names and Lua scripts of the Redis cache (redis-store.ts, redis-admin.ts).
 *
 * Keys (`<p>` the prefix, default `fc:`): one hash per entry, `<p>{cache:<key>}`, its fields the columns of cache.db's `responses`
 * rows (model, term, stage, codec, body, original_bytes, stored_bytes, created_at, expires_at); a
 * missing term, stage or expires_at is NULL. Every entry is its own hash tag, hence its own slot:
 * no script touches two entries, so a Redis Cluster spreads them freely. Run totals live in two keys
 * sharing the tag `{cache-runs}` (one slot), so the script that writes both stays atomic on a cluster:
 * `<p>{cache-runs}:runs` (a hash run_id -> JSON of the cache_runs row) and `<p>{cache-runs}:order`
 * (a sorted set of run ids scored by -started_at, so ZRANGE gives newest first and, among runs
 * started in the same ms, run ids in ascending order: the ORDER BY of cache.db).
 *
 * Scripts: each read-modify-write is one script (atomic, EVALSHA with ioredis falling back to EVAL
 * after SCRIPT FLUSH or a restart). ARGV[1] is always the time: '' means "read TIME", so hosts agree
 * on it; a number is a test's FakeClock (see RedisCacheOptions.clock). Same script either way.
 */
export interface CacheKeyNames {
  entry(key: string): string;
  /** The cache key inside an entry's name. */
  keyOf(name: string): string;
  /** SCAN MATCH pattern for entries whose cache key starts with `keyPrefix`. */
  entries(keyPrefix?: string): string;
  runs: string;
  runOrder: string;
}

export const DEFAULT_PREFIX = 'fc:';

/** The key names under `prefix` (every key starts with it: several deployments can share one Redis). */
export function cacheKeyNames(prefix: string): CacheKeyNames {
  // A brace in the prefix would become every key's hash tag: the whole cache in one slot.
  if (/[{}]/.test(prefix)) throw usageError(`cache store prefix must not contain { or }, got "${prefix}"`);
  const head = `${prefix}{cache:`;
  return {
    entry: (key) => `${head}${key}}`,
    keyOf: (name) => name.slice(head.length, -1),
    entries: (keyPrefix = '') => `${globEscape(head)}${globEscape(keyPrefix)}*}`,
    runs: `${prefix}{cache-runs}:runs`,
    runOrder: `${prefix}{cache-runs}:order`,
  };
}

/** SCAN MATCH treats * ? [ ] and \ as pattern characters; anything else matches itself. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Entry fields the admin reads, in this order (the body only where it is shown). */
export const SUMMARY_FIELDS = [
  'model',
  'term',
  'stage',
  'codec',
  'original_bytes',
  'stored_bytes',
  'created_at',
  'expires_at',
] as const;

// The time in ms: the test's clock when given, else the server's TIME (seconds and microseconds).
// Integers go back to Redis through %d: Redis writes other Lua numbers in a form that can lose digits
// or read as 1.7e+12.
const prelude = `
${nowMsLua}
local function int(n) return string.format('%d', n) end
`;

const scripts = {
  /** KEYS: entry. Returns codec, body, created_at, expires_at ('' = never), model and now; nil when missing. */
  fcCacheGet: {
    numberOfKeys: 1,
    readOnly: true,
    lua: `${prelude}
local v = redis.call('HMGET', KEYS[1], 'codec', 'body', 'created_at', 'expires_at', 'model')
if not v[1] or not v[2] or not v[3] then return false end
return {v[1], v[2], v[3], v[4] or '', v[5] or '', int(now_ms())}`,
  },
  /**
   * KEYS: entry. ARGV: now, lifetime ('' = never expires), grace, then field/value pairs. Replaces the
   * entry whole (fields of the old one, a term say, must not survive), dates it, and lets Redis drop
   * it `grace` ms after its fresh expiry. PEXPIREAT on Redis time; on a test's clock, whose now may lie
   * in Redis's past, the same span as a relative PEXPIRE.
   */
  fcCachePut: {
    numberOfKeys: 1,
    lua: `${prelude}
local now = now_ms()
local lifetime = ARGV[2]
redis.call('DEL', KEYS[1])
local fields = {'created_at', int(now)}
if lifetime ~= '' then
  fields[3] = 'expires_at'
  fields[4] = int(now + tonumber(lifetime))
end
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if lifetime ~= '' then
  local keep = tonumber(lifetime) + tonumber(ARGV[3])
  if ARGV[1] == '' then
    redis.call('PEXPIREAT', KEYS[1], int(now + keep))
  else
    redis.call('PEXPIRE', KEYS[1], int(keep))
  end
end
return int(now)`,
  },
  /**
   * KEYS: entry. ARGV: now, '1' = only if expired, '1' = only for model ARGV[4], older than ARGV[5] ms
   * ('' = any age). Deletes the entry if it matches now (the rules' isExpired and matchesClear, here
   * in Lua so that an entry another host just rewrote is judged as it is, not as SCAN saw it).
   * Returns its original and stored sizes, nil when it was kept or is gone.
   */
  fcCacheDeleteIf: {
    numberOfKeys: 1,
    lua: `${prelude}
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'model', 'created_at', 'expires_at', 'original_bytes', 'stored_bytes')
if not v[2] then return false end
if ARGV[2] == '1' and (not v[3] or tonumber(v[3]) > now) then return false end
if ARGV[3] == '1' and v[1] ~= ARGV[4] then return false end
if ARGV[5] ~= '' and tonumber(v[2]) >= now - tonumber(ARGV[5]) then return false end
redis.call('DEL', KEYS[1])
return {tonumber(v[4]) or 0, tonumber(v[5]) or 0}`,
  },
  /** KEYS: runOrder, runs. ARGV: run id, -started_at, the row as JSON. An upsert: absolute totals. */
  fcCacheRecordRun: {
    numberOfKeys: 2,
    lua: `
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1`,
  },
  /** KEYS: runOrder, runs. ARGV: how many. The newest runs' JSON rows, newest first. */
  fcCacheRecentRuns: {
    numberOfKeys: 2,
    readOnly: true,
    lua: `
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))`,
  },
  /** KEYS: runOrder, runs. ARGV: how many to keep. Forgets older runs; returns how many went. */
  fcCacheTrimRuns: {
    numberOfKeys: 2,
    lua: `
local old = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[1]), -1)
for i = 1, #old do
  redis.call('ZREM', KEYS[1], old[i])
  redis.call('HDEL', KEYS[2], old[i])
end
return #old`,
  },
} as const;

/** The scripts as ioredis defines them (name, and nameBuffer for binary-safe replies). */
export interface CacheScripts {
  fcCacheGetBuffer(
    key: string,
    now: string,
  ): Promise<[Buffer, Buffer, Buffer, Buffer, Buffer, Buffer] | null>;
  fcCachePut(
    key: string,
    now: string,
    lifetime: string,
    grace: string,
    ...fields: (string | Buffer)[]
  ): Promise<string>;
  fcCacheDeleteIf(
    key: string,
    now: string,
    expiredOnly: string,
    byModel: string,
    model: string,
    olderThanMs: string,
  ): Promise<[number, number] | null>;
  fcCacheRecordRun(
    runOrder: string,
    runs: string,
    runId: string,
    score: string,
    row: string,
  ): Promise<number>;
  fcCacheRecentRuns(runOrder: string, runs: string, count: string): Promise<(string | null)[]>;
  fcCacheTrimRuns(runOrder: string, runs: string, keep: string): Promise<number>;
}

/** Registers the scripts on the connection (idempotent: a second store on it redefines the same). */
export function withCacheScripts(conn: RedisConnection): CacheScripts {
  for (const [name, definition] of Object.entries(scripts)) conn.defineCommand(name, definition);
  return conn as unknown as CacheScripts;
}

/** The time argument of a script: a test's clock, or '' for the server's TIME. */
export function timeArg(clock: { now(): number } | undefined): string {
  return clock ? String(clock.now()) : '';
}

/** The store's time for decisions made outside a script (admin counts): the clock, or TIME. */
export async function storeNow(conn: RedisConnection, clock: { now(): number } | undefined): Promise<number> {
  if (clock) return clock.now();
  const [seconds, micros] = await conn.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

export function isCluster(conn: RedisConnection): conn is Cluster {
  return conn.isCluster;
}

/** The servers to SCAN: every master of a cluster (SCAN is per node), or the one server. */
export function scanTargets(conn: RedisConnection): Redis[] {
  return isCluster(conn) ? conn.nodes('master') : [conn];
}

/**
 * How a Redis failure reaches the CLI: what failed, where (no password), and exit 3. A server
 * that does not answer is the store being away, which a run waits out (store/health.ts).
 */
export function storeError(location: string, what: string, e: unknown): FlashcardsError {
  const reason = e instanceof Error ? e.message : String(e);
  if (classifyRedisError(e) === 'away') return storeUnavailable(location, `${what}: ${reason}`, e);
  return new FlashcardsError('database', `response cache at ${location}: ${what} failed (${reason})`, {
    exitCode: 3,
    hint: 'is the Redis server running and reachable? `flashcards doctor` checks the store',
    cause: e,
  });
}

/** A name for the store in messages and `cache stats`: its address and the prefix, never a password. */
export function describeStore(conn: RedisConnection, prefix: string): string {
  if (isCluster(conn)) {
    const first = conn.nodes('master')[0]?.options;
    return `redis-cluster://${first ? `${first.host}:${first.port}` : ''} ${prefix}{cache:*}`;
  }
  const o = conn.options;
  const where = o.path ? `unix://${o.path}?db=${o.db ?? 0}` : `redis://${o.host}:${o.port}/${o.db ?? 0}`;
  return `${where} ${prefix}{cache:*}`;
}
