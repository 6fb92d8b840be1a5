-- Writes a process's settings report dated by Redis's clock, in one step: the date read and the
-- report written at once, so that of two processes starting together the one dated later has
-- written later, and finds the other's report when it reads them all. When it began is in
-- microseconds: two processes starting within one millisecond are still ordered.
-- KEYS[1] the reports' hash
-- ARGV[1] the process id, ARGV[2] the rest of the report (a JSON object, without since and at),
-- ARGV[3] when the process began reporting, in microseconds ('' at its first report: now)
-- Returns { since (microseconds), now (milliseconds) }.
local now_us = redis_now_us()
local now = math.floor(now_us / 1000)
local since = ARGV[3] == '' and now_us or tonumber(ARGV[3])
local rest = string.sub(ARGV[2], 2)
local separator = rest == '}' and '' or ','
redis.call('HSET', KEYS[1], ARGV[1], '{"since":' .. string.format('%d', since) .. ',"at":' .. string.format('%d', now) .. separator .. rest)
return { since, now }
