-- Takes a message out of its recipient's inbox for good (acknowledged, expired, returned, purged),
-- and remembers for a while that it left: a delivery of it landing late (issued before the send
-- was answered, but sent again on a new connection, or through another API process's slower
-- one) must not list it again. The memory is trimmed here and expires with the mailbox's quiet.
-- Dated by Redis's clock, not the caller's: the processes' clocks may be minutes apart, and one
-- ahead of the others would trim what they recorded (or one behind record what is trimmed next).
-- KEYS[1] recipient inbox, KEYS[2] the ids that left it lately (a sorted set by when)
-- ARGV[1] message id, ARGV[2] how long a departure is remembered (ms)
redis.call('ZREM', KEYS[1], ARGV[1])
local now = redis_now_ms()
local remembered = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - remembered)
redis.call('PEXPIRE', KEYS[2], remembered)
return 1
