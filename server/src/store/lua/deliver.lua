-- Puts an accepted message into its recipient's inbox, after the inbox's newest. Delivering
-- a message that is already there changes nothing, so a step that is retried is harmless; nor
-- does delivering one that left the inbox lately (leave-inbox.lua): a delivery landing after the
-- recipient acknowledged the message must not list it again.
-- KEYS[1] recipient inbox, KEYS[2] the inbox's order counter, KEYS[3] the ids that left it lately
-- ARGV[1] message id
-- Returns 1 when added, 0 when it was there or has left.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
return 1
