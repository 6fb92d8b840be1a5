-- Claims a fresh message id before anything is stored under it: refused while another send
-- holds it, and for good once a message is recorded under it (its reservation is gone then).
-- KEYS[1] message hash, KEYS[2] the id's reservation
-- ARGV[1] how long the reservation lasts (seconds)
-- Returns 1 when claimed, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('SET', KEYS[2], '1', 'EX', ARGV[1], 'NX') then
  return 1
end
return 0
