-- Writes a process's settings report dated by Redis's clock, in one step: the date read and the
-- report written at once, so that of two processes starting together the one dated later has
-- written later, and finds the other's report when it reads them all.
-- KEYS[1] the reports' hash
-- ARGV[1] the process id, ARGV[2] the rest of the report (a JSON object, without since and at),
-- ARGV[3] when the process started reporting ('' at its first report: now)
-- Returns now in milliseconds.
local now = redis_now_ms()
local since = ARGV[3] == '' and now or tonumber(ARGV[3])
local rest = string.sub(ARGV[2], 2)
local separator = rest == '}' and '' or ','
redis.call('HSET', KEYS[1], ARGV[1], '{"since":' .. string.format('%d', since) .. ',"at":' .. string.format('%d', now) .. separator .. rest)
return now
