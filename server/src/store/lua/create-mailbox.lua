-- Registers a mailbox unless its id is taken.
-- KEYS[1] mailbox hash, KEYS[2] mailbox index set
-- ARGV[1] mailbox id, ARGV[2..] field/value pairs
-- Returns 1 when created, 0 when the id exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
