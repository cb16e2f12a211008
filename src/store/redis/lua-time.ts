/**
 * The Lua every store's scripts start with to read the time: ARGV[1] when a test injects a clock
 * (its milliseconds), else Redis TIME, so that hosts whose clocks differ agree. Whole milliseconds
 * (the limiter keeps fractions and has its own). Redis before 5 refuses writes after TIME unless
 * the script replicates its effects (the only mode since Redis 7).
 */
export const nowMsLua = `
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;
