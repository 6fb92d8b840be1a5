-- Sets fields of a hash that exists, never creating one (a mailbox or message may have been
-- deleted meanwhile).
-- KEYS[1] the hash, KEYS[2] (optional) a counter of changes, incremented with the update;
-- ARGV field/value pairs
-- Returns 1 when updated, 0 when there is no such hash.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
if KEYS[2] then
  redis.call('INCR', KEYS[2])
end
return 1
