-- Now by Redis's clock: one clock for every process of a deployment, whatever their hosts'
-- clocks say (scripts replicate their effects, so TIME may be called).
local function redis_now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- The same in whole milliseconds.
local function redis_now_ms()
  return math.floor(redis_now_us() / 1000)
end
