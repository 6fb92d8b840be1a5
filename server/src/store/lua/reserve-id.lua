-- Claims a fresh message id before anything is stored under it: refused while another send
-- holds it, and for good once a message is recorded under it (its reservation is gone then).
-- A reservation holding this claim's own value was made by this very claim: its command runs
-- again because its answer was lost with the connection (ioredis sends it again), and the id is
-- the claimant's (refused, its send would go under another id than its token names).
-- KEYS[1] message hash, KEYS[2] the id's reservation
-- ARGV[1] how long the reservation lasts (seconds), ARGV[2] a value of this claim's own
-- Returns 1 when claimed, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1], 'NX') or redis.call('GET', KEYS[2]) == ARGV[2] then
  return 1
end
return 0
