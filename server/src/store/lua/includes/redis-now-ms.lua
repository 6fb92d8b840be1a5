-- Now by Redis's clock, in whole milliseconds: one clock for every process of a deployment,
-- whatever their hosts' clocks say (scripts replicate their effects, so TIME may be called).
local function redis_now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
