-- Puts an accepted message into its recipient's inbox, after the inbox's newest. Delivering
-- a message that is already there changes nothing, so a step that is retried is harmless.
-- KEYS[1] recipient inbox, KEYS[2] the inbox's order counter
-- ARGV[1] message id
-- Returns 1 when added, 0 when it was there.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
return 1
