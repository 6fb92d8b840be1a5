-- Moves a message's next lifecycle check from one time to a later one, only if it is still at
-- the first: a check claimed by a worker meanwhile (its lease), or brought forward by another
-- step (an acknowledgement's purge), stands.
-- KEYS[1] schedule shard
-- ARGV[1] message id, ARGV[2] the time expected (ms), ARGV[3] the new time (ms)
-- Returns 1 when moved, 0 when left.
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
