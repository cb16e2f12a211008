/**
 * The limiter's Redis operations as Lua, one script an operation (ioredis defineCommand: EVALSHA,
 * EVAL when the server lost its script cache). Each mirrors the rule of gcra.ts it names, line for
 * line, so test/conformance/limiter-store.ts and the differential test against SQLite give the
 * same numbers. The 429 script, which mirrors after-429.ts, is in redis-429-script.ts.
 *
 * Keys (redis-store.ts limiterKeys): one limiter key is three Redis keys with one hash tag, so a
 * script touches one slot on a cluster: `row` (a hash: the KeyRow fields, a missing field is
 * null), `tats` (a hash: `<kind>:<shard>` -> TAT and `<kind>:<shard>:at` -> its updated_at, and
 * `key`), `rates` (a hash: `s:<instance>` -> "accepted admitted since at", and `key`). Every
 * object keeps the readable limiter key in its `key` field (the Redis key names a hash of it).
 *
 * Numbers: arguments and stored values are decimal strings that round-trip exactly (JavaScript's
 * String(x), Redis' own conversion of a Lua number in redis.call); replies are formatted with
 * %.17g, because Redis truncates a Lua number reply to an integer. ARGV[1] is the backend time in
 * ms when a test injects a clock, '' otherwise: then the script reads Redis TIME, so hosts whose
 * clocks differ still agree.
 */

/** Helpers every script starts with. */
export const prelude = `
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function fmt(x)
  if x == math.huge then return 'Infinity' elseif x == -math.huge then return '-Infinity' end
  return string.format('%.17g', x)
end
-- A row created by any write starts with its readable key and its time (SQLite's INSERT ... updated_at).
local function stamp(row, name, now)
  if redis.call('EXISTS', row) == 0 then redis.call('HSET', row, 'key', name, 'updated_at', now) end
end
-- Sets a field, or removes it for null ('' from the caller, nil in Lua).
local function put(h, field, value)
  if value == nil or value == '' then redis.call('HDEL', h, field) else redis.call('HSET', h, field, value) end
end
-- Writes changed TATs (field -> TAT) with their updated_at, in one HSET.
local function put_tats(tats, name, fields, values, now)
  if #fields == 0 then return end
  local args = {'key', name}
  for _, f in ipairs(fields) do
    args[#args + 1] = f
    args[#args + 1] = values[f]
    args[#args + 1] = f .. ':at'
    args[#args + 1] = now
  end
  redis.call('HSET', tats, unpack(args))
end
-- raised() for every shard 0..shards-1 (gcra.ts): a shard below the floor, or missing, is set to it.
local function raise(tats, name, kind, shards, floor, now)
  local fields = {}
  for s = 0, shards - 1 do fields[#fields + 1] = kind .. ':' .. s end
  local stored = redis.call('HMGET', tats, unpack(fields))
  local writes, values = {}, {}
  for i, f in ipairs(fields) do
    local tat = tonumber(stored[i])
    if tat == nil or tat < floor then
      writes[#writes + 1] = f
      values[f] = floor
    end
  end
  put_tats(tats, name, writes, values, now)
end
-- One instance's share of the meters (an overwrite); shares untouched for keepMs are dropped, as
-- the 429 operation drops them before it reads (so dropping them here as well changes no answer,
-- and keeps the hash from growing by one field per run).
local function publish(rates, name, instance, accepted, admitted, measuring, now, keep)
  local all = redis.call('HGETALL', rates)
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 's:' then
      local at = tonumber(string.match(all[i + 1], '([^ ]+)$'))
      if at < now - keep then redis.call('HDEL', rates, f) end
    end
  end
  redis.call('HSET', rates, 'key', name, 's:' .. instance,
    string.format('%.17g %.17g %.17g %.17g', accepted, admitted, now - measuring, now))
end
`;

/**
 * decideBooking (gcra.ts). KEYS: row, tats. ARGV: now, key, maxWaitMs, shard a, shard b, n, then n
 * times (kind, costMs, tauMs), m, then m times (kind, shard, ms) of refunds. Reply: ok (1/0), now,
 * delayMs, pausedBy (nil unless refused by the pause), then per bucket (shard, after) when ok.
 */
export const bookLua = `${prelude}
local now = now_ms(ARGV[1])
local name = ARGV[2]
local max_wait = tonumber(ARGV[3])
local a, b = ARGV[4], ARGV[5]
local pause = redis.call('HMGET', KEYS[1], 'paused_until', 'pause_reason')
local paused_until = tonumber(pause[1]) or 0
local pause_reason = pause[2]
-- The TATs involved, read once each (false: a shard never used, which is full).
local tats, writes, written = {}, {}, {}
local function tat_of(f)
  local v = tats[f]
  if v == nil then
    v = tonumber(redis.call('HGET', KEYS[2], f)) or false
    tats[f] = v
  end
  if v == false then return nil end
  return v
end
local function write(f, tat)
  tats[f] = tat
  if not written[f] then
    written[f] = true
    writes[#writes + 1] = f
  end
end
local buckets, p = {}, 7
for j = 1, tonumber(ARGV[6]) do
  buckets[j] = { kind = ARGV[p], cost = tonumber(ARGV[p + 1]), tau = tonumber(ARGV[p + 2]) }
  p = p + 3
end
local refunds = tonumber(ARGV[p])
p = p + 1
for _ = 1, refunds do
  local f = ARGV[p] .. ':' .. ARGV[p + 1]
  local ms = tonumber(ARGV[p + 2])
  p = p + 3
  -- refunded(): back by ms, never below now; an unused shard is full already.
  local tat = tat_of(f)
  if tat ~= nil then write(f, math.max(now, tat - ms)) end
end
local at = math.max(now, paused_until)
local picks = {}
for j, bk in ipairs(buckets) do
  -- fuller(): the earlier TAT (a never-used shard is earliest), the first on a tie.
  local ta, tb = tat_of(bk.kind .. ':' .. a), tat_of(bk.kind .. ':' .. b)
  local pick = { shard = a, tat = ta }
  if (tb or -math.huge) < (ta or -math.huge) then pick = { shard = b, tat = tb } end
  picks[j] = pick
  -- conformsAt(): TAT + cost - tau; a never-used shard conforms at once (-inf).
  if pick.tat ~= nil then at = math.max(at, pick.tat + bk.cost - bk.tau) end
end
local delay = at - now
local reply
if delay > max_wait then
  local paused_by = false
  if paused_until >= at and paused_until > now then paused_by = pause_reason or 'rate limited' end
  reply = { '0', fmt(now), fmt(delay), paused_by }
else
  reply = { '1', fmt(now), fmt(delay), false }
  for j, bk in ipairs(buckets) do
    local pick = picks[j]
    -- charged(): max(TAT, send time) + cost.
    local after = math.max(pick.tat or at, at) + bk.cost
    write(bk.kind .. ':' .. pick.shard, after)
    reply[#reply + 1] = pick.shard
    reply[#reply + 1] = fmt(after)
  end
end
put_tats(KEYS[2], name, writes, tats, now)
return reply
`;

/**
 * cancelled() (gcra.ts) for each charge of a booking. KEYS: tats. ARGV: now, key, n, then n times
 * (kind, shard, costMs, after). The stored TATs are read before any is written, as SQLite does.
 */
export const cancelLua = `${prelude}
local now = now_ms(ARGV[1])
local n, p = tonumber(ARGV[3]), 4
local charges, fields = {}, {}
for j = 1, n do
  charges[j] = { f = ARGV[p] .. ':' .. ARGV[p + 1], cost = tonumber(ARGV[p + 2]), after = tonumber(ARGV[p + 3]) }
  fields[j] = charges[j].f
  p = p + 4
end
local stored = redis.call('HMGET', KEYS[1], unpack(fields))
local writes, values = {}, {}
for j, c in ipairs(charges) do
  local tat = tonumber(stored[j])
  -- A shard reset in the meantime is full already: there is nothing to give back.
  if tat ~= nil then
    if not values[c.f] then writes[#writes + 1] = c.f end
    values[c.f] = math.max(now, tat - math.max(0, c.cost - (tat - c.after)))
  end
end
put_tats(KEYS[1], ARGV[2], writes, values, now)
`;

/** charged() (gcra.ts) as of now, on a used shard only. KEYS: tats. ARGV: now, key, kind, shard, costMs. */
export const chargeLua = `${prelude}
local now = now_ms(ARGV[1])
local f = ARGV[3] .. ':' .. ARGV[4]
local tat = tonumber(redis.call('HGET', KEYS[1], f))
if tat == nil then return end
put_tats(KEYS[1], ARGV[2], { f }, { [f] = math.max(tat, now) + tonumber(ARGV[5]) }, now)
`;

/** Every shard raised to now + aheadMs (restart). KEYS: tats. ARGV: now, key, n, then n times (kind, shards, aheadMs). */
export const restartLua = `${prelude}
local now = now_ms(ARGV[1])
local p = 4
for _ = 1, tonumber(ARGV[3]) do
  raise(KEYS[1], ARGV[2], ARGV[p], tonumber(ARGV[p + 1]), now + tonumber(ARGV[p + 2]), now)
  p = p + 3
end
`;

/**
 * The key row's small writes, each the SQLite statement of the same name. KEYS: row. ARGV: now,
 * key, then the operation's values ('' = null). Each replies the row after (HGETALL), except
 * `latency`, whose caller needs nothing back.
 */
export const rowLua = {
  /** The layout in use: a plain overwrite of these fields, and updated_at. */
  layout: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
local fields = { 'shards', 'rpm', 'rpm_burst', 'tpm', 'tpm_burst', 'configured_rpm', 'configured_tpm',
  'max_request_tokens' }
for i, f in ipairs(fields) do put(KEYS[1], f, ARGV[2 + i]) end
redis.call('HSET', KEYS[1], 'updated_at', now)
return redis.call('HGETALL', KEYS[1])
`,
  /** Reported limits (null keeps the stored one), header_at, observed_at once. ARGV: rpm, tpm. */
  learn: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'header_rpm', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'header_tpm', ARGV[4]) end
redis.call('HSETNX', KEYS[1], 'observed_at', now)
redis.call('HSET', KEYS[1], 'header_at', now, 'updated_at', now)
return redis.call('HGETALL', KEYS[1])
`,
  observed: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
redis.call('HSETNX', KEYS[1], 'observed_at', now)
redis.call('HSET', KEYS[1], 'updated_at', now)
return redis.call('HGETALL', KEYS[1])
`,
  /** The later pause end wins, with its reason. ARGV: forMs, reason. */
  pause: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
local till = now + tonumber(ARGV[3])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if till > current then redis.call('HSET', KEYS[1], 'pause_reason', ARGV[4]) end
redis.call('HSET', KEYS[1], 'paused_until', math.max(current, till), 'updated_at', now)
return redis.call('HGETALL', KEYS[1])
`,
  /** strikes to 0 when above it; creates nothing and leaves updated_at. */
  clearStrikes: `${prelude}
if (tonumber(redis.call('HGET', KEYS[1], 'strikes')) or 0) > 0 then redis.call('HSET', KEYS[1], 'strikes', 0) end
return redis.call('HGETALL', KEYS[1])
`,
  /** ARGV: 'upfront' | 'usage' | '' (forgotten). */
  tokenAccounting: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
put(KEYS[1], 'token_accounting', ARGV[3])
redis.call('HSET', KEYS[1], 'updated_at', now)
return redis.call('HGETALL', KEYS[1])
`,
  /** ARGV: p50, p75. updated_at only on a row this creates, as in SQLite. */
  latency: `${prelude}
local now = now_ms(ARGV[1])
stamp(KEYS[1], ARGV[2], now)
redis.call('HSET', KEYS[1], 'latency_p50_ms', ARGV[3], 'latency_p75_ms', ARGV[4], 'latency_at', now)
`,
} as const;

/** publishRates. KEYS: rates. ARGV: now, key, instance, accepted, admitted, measuringMs, keepMs. */
export const publishLua = `${prelude}
local now = now_ms(ARGV[1])
publish(KEYS[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), now, tonumber(ARGV[7]))
`;
