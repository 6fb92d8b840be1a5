-- Counts one request of a mailbox in a one-second window and returns the count so far.
-- KEYS[1] the window's counter
-- ARGV[1] how long the counter lives (seconds): past its window, when nothing reads it again
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
