import type { Clock } from '../core/clock.ts';
import type { RedisConnection } from '../store/redis/connection.ts';
import { nowMsLua } from '../store/redis/lua-time.ts';

/**
 * What the three Redis batch stores share: the connection, the key namespace, where time comes
 * from, the Lua scripts, and the job outcomes still on their way to the server.
 *
 * Keys. Every key of one batch carries the hash tag `{b:<batchId>}`, so a batch lives in one slot
 * and every script below touches the keys of one slot only (Redis Cluster). Each script is handed
 * all the batch's keys, in the order of `batchKeySuffixes`, and names them with the same locals
 * (`prelude`). What each key holds, with the SQLite column it stands for:
 *   meta     hash    the `batches` row (same field names; a NULL column is an absent field)
 *   data     hash    idx -> the item's data JSON (items.data)
 *   free     zset    idx scored idx: pending items not leased (released, or never claimed)
 *   leased   zset    idx scored by lease_until: pending items with an owner, live or lapsed
 *   owner    hash    idx -> lease owner (items.owner), for the items in `leased`
 *   token    hash    idx -> claims so far (items.attempts, the lease token); absent = 0
 *   done     zset    idx scored idx: finished items, in input order
 *   failed   zset    idx scored idx: failed items, in input order
 *   errors   hash    idx -> JSON [error_kind, error] of a failed item
 *   jobs     hash    "<idx>:<stage>" -> the `jobs` row but its result, as JSON; absent = pending
 *   results  hash    "<idx>:<stage>" -> a done job's result JSON (present exactly when it is done)
 *   stats    hash    "<field>:<stage>" counters kept by the writes: total, done, failed, cached,
 *                    requests, prompt, completion (`batches list/show` read them, never the rows)
 *   times    zset    "<idx>:<stage>" scored by request_ms: done, uncached jobs (percentiles by rank)
 *   runs     hash    owner -> JSON {exclusive, started_at, alive_until} (the `runs` table)
 * An item's status is where it is: `done`, `failed`, or else pending. The batch ids in `batchIndex`
 * (its own slot) let `batches list` find every batch without SCAN.
 */
export const batchKeySuffixes = [
  'meta',
  'data',
  'free',
  'leased',
  'owner',
  'token',
  'done',
  'failed',
  'errors',
  'jobs',
  'results',
  'stats',
  'times',
  'runs',
] as const;

/**
 * Lua shared by every script: the keys by name, the time, and the rules of rules.ts that several
 * scripts apply. ARGV[1] is always the time: empty in production (the script reads Redis TIME, so
 * every host agrees), the FakeClock's reading in tests (the same script either way).
 */
const prelude = `
local META, DATA, FREE, LEASED, OWNER, TOKEN, DONE, FAILED, ERRORS, JOBS, RESULTS, STATS, TIMES, RUNS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11],
  KEYS[12], KEYS[13], KEYS[14]
${nowMsLua}
-- rules.ts fenceAdmits: the item exists, is pending (neither done nor failed), and its claims so
-- far equal the token.
local function fence_admits(idx, token)
  if redis.call('HEXISTS', DATA, idx) == 0 then return false end
  if redis.call('ZSCORE', DONE, idx) or redis.call('ZSCORE', FAILED, idx) then return false end
  return tonumber(redis.call('HGET', TOKEN, idx) or '0') == tonumber(token)
end
-- Hands a pending item back: no owner, lease_until 0 (claimable at once).
local function release(idx)
  redis.call('ZREM', LEASED, idx)
  redis.call('HDEL', OWNER, idx)
  redis.call('ZADD', FREE, idx, idx)
end
-- Ends an item's life as pending: into DONE or FAILED, lease cleared.
local function settle(idx, set)
  redis.call('ZREM', LEASED, idx)
  redis.call('ZREM', FREE, idx)
  redis.call('HDEL', OWNER, idx)
  redis.call('ZADD', set, idx, idx)
end
-- The stages that have jobs in this batch (those insertItems counted).
local function job_stages()
  local out = {}
  for _, field in ipairs(redis.call('HKEYS', STATS)) do
    local stage = string.match(field, '^total:(.*)$')
    if stage then out[#out + 1] = stage end
  end
  return out
end
`;

/** What a script returns, as ioredis hands it over: integers, strings, nil, and arrays of them. */
export type Reply = string | number | null | Reply[];

type ScriptCall = (...args: (string | number)[]) => Promise<Reply>;

/** The reply as an array (a script returning a Lua table). */
export function list(reply: Reply): Reply[] {
  if (!Array.isArray(reply)) throw new Error(`expected an array from Redis, got ${typeof reply}`);
  return reply;
}

export function text(reply: Reply | undefined): string {
  if (typeof reply === 'string') return reply;
  if (typeof reply === 'number') return String(reply);
  throw new Error(`expected a string from Redis, got ${reply === null ? 'nil' : typeof reply}`);
}

export function int(reply: Reply | undefined): number {
  const n = typeof reply === 'number' ? reply : Number(reply);
  if (!Number.isFinite(n)) throw new Error(`expected a number from Redis, got ${String(reply)}`);
  return n;
}

/** Flat HGETALL-style pairs as a record. */
export function pairs(reply: Reply | undefined): Record<string, string> {
  const items = reply === undefined ? [] : list(reply);
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < items.length; i += 2) out[text(items[i])] = text(items[i + 1]);
  return out;
}

/**
 * Batch ids are hex digests today, but `--batch` and prefixes come from users: braces in an id
 * would move the hash tag, so they are escaped (a hex id reads unchanged).
 */
function keyPart(batchId: string): string {
  return batchId.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export class RedisBatchDb {
  readonly conn: RedisConnection;
  readonly prefix: string;
  readonly #clock: Clock | undefined;
  /** Job outcomes sent and not yet answered: reads wait for them (flush-before-read). */
  readonly #inflight = new Set<Promise<unknown>>();

  constructor(conn: RedisConnection, prefix: string, clock: Clock | undefined) {
    this.conn = conn;
    this.prefix = prefix;
    this.#clock = clock;
  }

  /** The key of the set of batch ids (its own slot: `batches list` reads it, then each batch). */
  get batchIndex(): string {
    return `${this.prefix}{batches}:ids`;
  }

  /** One key of a batch. */
  key(batchId: string, suffix: (typeof batchKeySuffixes)[number]): string {
    return `${this.prefix}{b:${keyPart(batchId)}}:${suffix}`;
  }

  /** Every key of one batch, in the order the scripts' prelude names them. */
  keys(batchId: string): string[] {
    return batchKeySuffixes.map((s) => this.key(batchId, s));
  }

  /**
   * Registers a script on the connection (ioredis `defineCommand`: EVALSHA, falling back to EVAL
   * when the server lost it, e.g. after SCRIPT FLUSH or a restart). Defining it again, from
   * another store on the same connection, replaces it with the same text.
   */
  define(name: string, body: string): void {
    this.conn.defineCommand(name, { lua: prelude + body, numberOfKeys: batchKeySuffixes.length });
  }

  /** Runs a script defined above on one batch's keys; the time goes first (see `prelude`). */
  run(name: string, batchId: string, args: (string | number)[] = []): Promise<Reply> {
    const fn = (this.conn as unknown as Record<string, ScriptCall | undefined>)[name];
    if (!fn) throw new Error(`Redis script ${name} was not defined`);
    const now = this.#clock ? String(this.#clock.now()) : '';
    return fn.call(this.conn, ...this.keys(batchId), now, ...args);
  }

  /** Runs a write and remembers it until answered, so that reads made meanwhile come after it. */
  write(name: string, batchId: string, args: (string | number)[]): Promise<Reply> {
    const sent = this.run(name, batchId, args);
    const tracked = sent.finally(() => this.#inflight.delete(tracked));
    // The caller sees a failure through `sent`; the tracked copy only marks completion.
    tracked.catch(() => {});
    this.#inflight.add(tracked);
    return sent;
  }

  /** Waits for the writes sent so far (failed ones included: their callers saw the error). */
  async settled(): Promise<void> {
    if (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Waits for the writes sent so far; rejects if one of them failed. */
  async flush(): Promise<void> {
    if (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }
}
