-- Counts a request of a mailbox (or certificate) in its window (a second; a minute for failed logins) and returns the count so far.
-- KEYS[1] the window's counter
-- ARGV[1] how long the counter lives (seconds): past its window, when nothing reads it again
-- ARGV[2] how many requests it counts as (a costly one counts as several)
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
