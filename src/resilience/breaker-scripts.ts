import type { RedisConnection } from '../store/redis/connection.ts';
import { nowMsLua } from '../store/redis/lua-time.ts';

/**
 * The Redis breaker store's operations, one Lua script each: data operations only (the rules stay in
 * breaker-machine.ts; see breaker-store.ts). Registered with ioredis `defineCommand`, which sends
 * EVALSHA and falls back to EVAL when the server does not know the script (restarted, SCRIPT FLUSH).
 * A script runs alone on the server, so each is atomic; every key a script touches carries the
 * breaker's hash tag, so on a Cluster each runs on one slot.
 *
 * KEYS: [1] state hash, [2] window hash, [3] history sorted set (breaker-store-redis.ts names them).
 * ARGV[1] is always the time: '' to read Redis TIME (production), or the test clock's milliseconds.
 * Numbers are written with '%.0f': Lua's own number formatting would print a 13-digit time in
 * exponent form.
 */
const prelude = `
${nowMsLua}
local function str(n) return string.format('%.0f', n) end
local function create(now, key)
  redis.call('HSET', KEYS[1], 'key', key, 'state', 'closed', 'consecutive_opens', '0',
    'updated_at', str(now), 'version', '0')
end
-- {now, the state hash's fields, calls and failures in the buckets that began after now - window,
-- the newest bucket's start or -1}. The window: one field per ring slot, "start:calls:failures".
local function snapshot(now, window_ms)
  local fields = redis.call('HGETALL', KEYS[1])
  local calls, failures, last = 0, 0, -1
  if #fields > 0 then
    for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
      local s, c, f = string.match(v, '^(%d+):(%d+):(%d+)$')
      if s then
        s = tonumber(s)
        if s > now - window_ms then
          calls = calls + tonumber(c)
          failures = failures + tonumber(f)
        end
        if s > last then last = s end
      end
    end
  end
  return {now, fields, calls, failures, last}
end
`;

/** ARGV: now, readable key. Creates the breaker closed unless it exists. */
const ensure = `
if redis.call('EXISTS', KEYS[1]) == 0 then create(now_ms(), ARGV[2]) end
return 1
`;

/** ARGV: now, window ms. Reads; creates nothing. */
const read = `
return snapshot(now_ms(), tonumber(ARGV[2]))
`;

/**
 * ARGV: now, window ms, readable key, bucket ms, ring slots, calls, failures, has error ('1'), error
 * kind, error message. Returns {1 if counted else 0, snapshot}.
 */
const record = `
local now = now_ms()
local window_ms, key = tonumber(ARGV[2]), ARGV[3]
local bucket_ms, slots = tonumber(ARGV[4]), tonumber(ARGV[5])
local calls, failures = tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  -- Removed by hand (or never stored): it comes back closed, and the tally goes to it.
  create(now, key)
  state = 'closed'
end
if ARGV[8] == '1' then
  redis.call('HSET', KEYS[1], 'last_error_kind', ARGV[9], 'last_error_message', ARGV[10],
    'last_error_at', str(now))
end
local counted = 0
-- Counts only while closed: calls still in flight when the breaker opened say nothing about the
-- provider's health after the break. windowBucket of breaker-machine.ts, on Redis's clock.
if calls > 0 and state == 'closed' then
  local start = math.floor(now / bucket_ms) * bucket_ms
  local slot = str((start / bucket_ms) % slots)
  local s, c, f = string.match(redis.call('HGET', KEYS[2], slot) or '', '^(%d+):(%d+):(%d+)$')
  -- The same bucket adds up; a slot reused for a newer period starts over.
  if s and tonumber(s) == start then
    calls = calls + tonumber(c)
    failures = failures + tonumber(f)
  end
  redis.call('HSET', KEYS[2], slot, str(start) .. ':' .. str(calls) .. ':' .. str(failures))
  counted = 1
end
return {counted, snapshot(now, window_ms)}
`;

/**
 * ARGV: now, readable key, expected version, the state columns as JSON (strings or null), reset the
 * window ('1'), write a history line ('1'), its from-state, its cause, history entries kept.
 * Compare-and-set: returns {1, now} when written, {0} when the version moved.
 */
const transit = `
local now = now_ms()
local version = tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  -- A breaker never stored is at version 0: create it so the compare-and-set below can apply.
  if version ~= 0 then return {0} end
  create(now, ARGV[2])
end
if tonumber(redis.call('HGET', KEYS[1], 'version') or '0') ~= version then return {0} end
local columns = cjson.decode(ARGV[4])
-- A null column is an absent field, as a NULL in state.db.
local set, unset = {'updated_at', str(now)}, {}
for field, value in pairs(columns) do
  if value == cjson.null then
    unset[#unset + 1] = field
  else
    set[#set + 1] = field
    set[#set + 1] = value
  end
end
redis.call('HSET', KEYS[1], unpack(set))
if #unset > 0 then redis.call('HDEL', KEYS[1], unpack(unset)) end
redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
if ARGV[6] == '1' then
  -- Scored by its own sequence (the newest + 1), so the order is the order of writing, as SQLite's id.
  local top = redis.call('ZREVRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local seq = (tonumber(top[2]) or 0) + 1
  redis.call('ZADD', KEYS[3], str(seq),
    str(seq) .. '|' .. str(now) .. '|' .. ARGV[7] .. '|' .. columns.state .. '|' .. ARGV[8])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[9]) + 1))
end
return {1, now}
`;

/** Forgets the state and the window (the history stays). Returns 1 when there was a breaker. */
const remove = `
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return existed
`;

export type ScriptCall = (keys: string[], args: (string | number)[]) => Promise<unknown>;

/**
 * Registers the scripts on `redis` (again for each store on the same connection: harmless, the same
 * code under the same name) and returns a typed call for each.
 */
export function breakerScripts(
  redis: RedisConnection,
): Record<'ensure' | 'read' | 'record' | 'transit' | 'remove', ScriptCall> {
  const define = (name: string, body: string, numberOfKeys: number): ScriptCall => {
    redis.defineCommand(name, { lua: prelude + body, numberOfKeys });
    // defineCommand adds the method at run time; ioredis's types cannot know it.
    const call = Reflect.get(redis, name) as (...args: (string | number)[]) => Promise<unknown>;
    return (keys, args) => {
      if (keys.length !== numberOfKeys) throw new Error(`${name} takes ${numberOfKeys} keys`);
      return call.call(redis, ...keys, ...args);
    };
  };
  return {
    ensure: define('fcBreakerEnsure', ensure, 1),
    read: define('fcBreakerRead', read, 2),
    record: define('fcBreakerRecord', record, 2),
    transit: define('fcBreakerTransit', transit, 3),
    remove: define('fcBreakerRemove', remove, 2),
  };
}
