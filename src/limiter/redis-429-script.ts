import { minHistoryMs, ratesFreshMs, ratesKeepMs } from './after-429.ts';
import { burstSlackMs, minShardBurstRequests, spacingSlackMs } from './layout.ts';
import {
  aimdDecrease,
  aimdGrowthCapMs,
  aimdIncreasePerSecond,
  aimdMinGapMs,
  firstDefaultPauseMs,
  maxDefaultPauseMs,
} from './learn.ts';
import { prelude } from './redis-scripts.ts';

/**
 * record429 as one Lua script: after429 and restartsAfter429 (after-429.ts) with what they call
 * (learn.ts pauseAfter429, exhaustedUntil, headerLimits, effectiveRates, aimdRate, decreasedRate;
 * layout.ts planBuckets, burstFor, shardCount, bucketPlan; gcra.ts restartAheadMs), mirrored
 * function by function under the same names, in the same order of arithmetic, so a double comes
 * out the same as in JavaScript. The constants are those of the TypeScript modules, written into
 * the script text (a decimal that parses to the same double), so there is one statement of each.
 *
 * KEYS: row, tats, rates (one hash tag). ARGV: now, key, then one JSON object:
 * { info: RateLimitInfo, settings: LimiterSettings, share: RateShare } (cjson reads
 * numbers with strtod, exact; an undefined field is absent, so nil here). Reply: the row after.
 *
 * The one difference from SQLite: the fresh shares are summed in instance order by plain addition,
 * where SQLite's sum() may compensate rounding; the two can differ in the last bit of a sum of
 * fractional meters, which no decision depends on.
 */
export const record429Lua = `${prelude}
local now = now_ms(ARGV[1])
local name = ARGV[2]
local o = cjson.decode(ARGV[3])
local info, settings, share = o.info, o.settings, o.share

local function min_inf(x) if x == nil then return math.huge end return x end

-- learn.ts
local function aimd_rate(base, at, t)
  local elapsed = math.min(${aimdGrowthCapMs}, math.max(0, t - at))
  return base * (1 + (${aimdIncreasePerSecond} * elapsed) / 1000)
end
local function decreased_rate(current, accepted, admitted)
  local observed = math.max(accepted, admitted / 2)
  if not (observed > 0) then
    if current == nil then return nil end
    return math.max(1, current * ${aimdDecrease})
  end
  return math.max(1, ${aimdDecrease} * math.min(min_inf(current), observed))
end
local function pick_rate(conf, learned)
  if learned == nil then return conf end
  if conf == nil or learned < conf then return learned end
  return conf
end
local function effective_rates(row, t)
  local learned_rpm = row.header_rpm
  if learned_rpm == nil and row.aimd_rpm ~= nil and row.aimd_at ~= nil then
    learned_rpm = aimd_rate(row.aimd_rpm, row.aimd_at, t)
  end
  return { rpm = pick_rate(settings.rpm, learned_rpm), tpm = pick_rate(settings.tpm, row.header_tpm) }
end
local function per_minute(limit, reset)
  if limit ~= nil and limit > 0 and (reset == nil or reset <= 61000) then return limit end
  return nil
end
local function exhausted_until(t)
  local rpm = per_minute(info.limitRequests, info.resetRequestsMs)
  local tpm = per_minute(info.limitTokens, info.resetTokensMs)
  local till, reason = nil, ''
  if info.remainingRequests == 0 and info.resetRequestsMs ~= nil then
    local wait = info.resetRequestsMs
    if rpm ~= nil then wait = math.min(info.resetRequestsMs, 60000 / rpm) end
    till = t + wait
    reason = 'provider reported 0 requests remaining'
  end
  if info.remainingTokens == 0 and info.resetTokensMs ~= nil then
    local wait = info.resetTokensMs
    if tpm ~= nil then wait = math.min(info.resetTokensMs, (60000 * settings.maxRequestTokens) / tpm) end
    if till == nil or t + wait > till then
      till = t + wait
      reason = 'provider reported 0 tokens remaining'
    end
  end
  return till, reason
end
local function pause_after_429(strikes, t)
  if info.retryAfterMs ~= nil then return info.retryAfterMs, 'Retry-After' end
  local till, reason = exhausted_until(t)
  if till ~= nil then return till - t, reason end
  return math.min(${maxDefaultPauseMs}, ${firstDefaultPauseMs} * 2 ^ math.min(strikes, 10)), 'no Retry-After'
end

-- layout.ts
local function burst_for(kind, rate)
  local one = 1
  if kind == 'tpm' then one = settings.maxRequestTokens end
  return math.min(rate, math.max(one, (rate * settings.burstSeconds) / 60))
end
-- 2^floor(log2(n)); frexp gives the exponent exactly.
local function floor_power_of_two(n)
  if n < 1 then return 1 end
  local _, e = math.frexp(n)
  return 2 ^ (e - 1)
end
local function shard_count(rpm_burst, tpm_burst)
  local auto = settings.shards == 'auto'
  local n = math.huge
  if not auto then n = settings.shards end
  if rpm_burst ~= nil then
    if auto then n = math.min(n, floor_power_of_two(rpm_burst / ${minShardBurstRequests}))
    else n = math.min(n, math.floor(rpm_burst)) end
  end
  if tpm_burst ~= nil then
    local fit = tpm_burst / settings.maxRequestTokens
    if auto then n = math.min(n, floor_power_of_two(fit)) else n = math.min(n, math.floor(fit)) end
  end
  if n == math.huge then return 1 end
  return math.max(1, n)
end
local function bucket_plan(kind, rate, burst, shards)
  local shard_burst = burst / shards
  local one = 1
  if kind == 'tpm' then one = math.min(settings.maxRequestTokens, shard_burst) end
  local nominal = (60000 * shards) / rate
  local interval = nominal
  if kind == 'rpm' then interval = nominal + math.max(0, ${spacingSlackMs} - (shard_burst - 1) * nominal) end
  local tau = math.max(one * interval, shard_burst * nominal - ${burstSlackMs})
  return { kind = kind, shards = shards, interval = interval, tau = tau }
end
local function plan_for(row, t)
  local rates = effective_rates(row, t)
  local rpm_burst, tpm_burst = nil, nil
  if rates.rpm ~= nil then rpm_burst = burst_for('rpm', rates.rpm) end
  if rates.tpm ~= nil then tpm_burst = burst_for('tpm', rates.tpm) end
  local shards = shard_count(rpm_burst, tpm_burst)
  local plan = {}
  if rpm_burst ~= nil then plan.rpm = bucket_plan('rpm', rates.rpm, rpm_burst, shards) end
  if tpm_burst ~= nil then plan.tpm = bucket_plan('tpm', rates.tpm, tpm_burst, shards) end
  return plan
end

-- after-429.ts
local stored = redis.call('HMGET', KEYS[1], 'paused_until', 'strikes', 'header_rpm', 'header_tpm', 'aimd_rpm', 'aimd_at')
local row = {
  paused_until = tonumber(stored[1]) or 0,
  strikes = tonumber(stored[2]) or 0,
  header_rpm = tonumber(stored[3]),
  header_tpm = tonumber(stored[4]),
  aimd_rpm = tonumber(stored[5]),
  aimd_at = tonumber(stored[6]),
}
local has_limit_headers = info.limitRequests ~= nil or info.limitTokens ~= nil or
  info.remainingRequests ~= nil or info.remainingTokens ~= nil
-- wantsSharedRates: learning by AIMD (nothing configured or reported), no limit headers, growth started.
local wants = settings.rpm == nil and row.header_rpm == nil and not has_limit_headers and
  (row.aimd_at == nil or now >= row.aimd_at)

-- The shared meters (stale shares dropped, this instance's published first) and the latest RPM TAT.
local shared, max_rpm_tat = nil, nil
if wants then
  publish(KEYS[3], name, share.instance, share.accepted, share.admitted, share.measuringMs, now, ${ratesKeepMs})
  local all = redis.call('HGETALL', KEYS[3])
  local instances, values = {}, {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 's:' then
      instances[#instances + 1] = all[i]
      values[all[i]] = all[i + 1]
    end
  end
  table.sort(instances)
  local accepted, admitted, since = 0, 0, nil
  for _, f in ipairs(instances) do
    local acc, adm, s, at = string.match(values[f], '^(%S+) (%S+) (%S+) (%S+)$')
    if tonumber(at) >= now - ${ratesFreshMs} then
      accepted = accepted + tonumber(acc)
      admitted = admitted + tonumber(adm)
      if since == nil or tonumber(s) < since then since = tonumber(s) end
    end
  end
  shared = { accepted = accepted, admitted = admitted, history = now - (since or now) }
  local tats = redis.call('HGETALL', KEYS[2])
  for i = 1, #tats, 2 do
    if string.match(tats[i], '^rpm:%d+$') then
      local tat = tonumber(tats[i + 1])
      if max_rpm_tat == nil or tat > max_rpm_tat then max_rpm_tat = tat end
    end
  end
end

-- after429: 429s for requests in flight when the pause began are the same episode.
local new_episode = now >= row.paused_until
local strikes = row.strikes
if new_episode then strikes = row.strikes + 1 end
local pause_ms, source = pause_after_429(strikes - 1, now)
local till = row.paused_until
if new_episode or source == 'Retry-After' then till = now + pause_ms end
local aimd_rpm, aimd_at = row.aimd_rpm, row.aimd_at
if shared ~= nil then
  local current = nil
  if aimd_rpm ~= nil and aimd_at ~= nil then current = aimd_rate(aimd_rpm, aimd_at, now) end
  local decreased = nil
  if shared.history >= ${minHistoryMs} then
    decreased = decreased_rate(current, shared.accepted, shared.admitted)
  elseif shared.admitted > 0 then
    decreased = math.min(min_inf(current), shared.admitted)
  end
  if decreased ~= nil then
    -- bookedUntil: the latest send time booked in the request bucket of the row before this 429.
    local booked = 0
    local bucket = plan_for(row, now).rpm
    if bucket ~= nil and max_rpm_tat ~= nil then booked = max_rpm_tat - bucket.tau end
    aimd_rpm = decreased
    aimd_at = math.max(now, till, booked) + ${aimdMinGapMs}
  end
end
local reason = '429 from the provider (' .. source
if strikes > 1 then reason = reason .. ', ' .. strikes .. ' in a row' end
reason = reason .. ')'

-- The row write (SQLite's on429 statement).
stamp(KEYS[1], name, now)
if till >= row.paused_until then redis.call('HSET', KEYS[1], 'pause_reason', reason) end
redis.call('HSET', KEYS[1], 'paused_until', math.max(row.paused_until, till), 'strikes', strikes, 'updated_at', now)
put(KEYS[1], 'aimd_rpm', aimd_rpm)
put(KEYS[1], 'aimd_at', aimd_at)
redis.call('HSETNX', KEYS[1], 'observed_at', now)

-- restartsAfter429, in the buckets of the row as this 429 left it.
local next_plan = plan_for({ header_rpm = row.header_rpm, header_tpm = row.header_tpm, aimd_rpm = aimd_rpm,
  aimd_at = aimd_at }, now)
for _, bucket in ipairs({ next_plan.rpm or false, next_plan.tpm or false }) do
  if bucket then
    local unit = 1
    if bucket.kind == 'tpm' then unit = settings.maxRequestTokens end
    local ahead = till - now + math.max(0, bucket.tau - unit * bucket.interval)
    raise(KEYS[2], name, bucket.kind, bucket.shards, now + ahead, now)
  end
end
return redis.call('HGETALL', KEYS[1])
`;
