-- Registers a mailbox unless its id is taken, with its lookup indexes.
-- KEYS[1] mailbox hash, KEYS[2] mailbox index set, KEYS[3] its ODS code's mailbox set,
-- KEYS[4] the directory's change counter,
-- KEYS[5..] receiver sets of the workflows it receives (not '*': a wildcard is not a registration)
-- ARGV[1] mailbox id, ARGV[2..] field/value pairs
-- Returns 1 when created, 0 when the id exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
for i = 5, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
end
redis.call('INCR', KEYS[4])
return 1
