-- Records a new message whose first chunk is already in object storage (or, for a small
-- message, is stored here with it), and accepts it into the recipient's inbox at once when it
-- has only one chunk.
-- KEYS[1] message hash, KEYS[2] chunk sizes, KEYS[3] recipient inbox, KEYS[4] inbox sequence,
-- KEYS[5] sender outbox, KEYS[6] sender's local-id index, KEYS[7] inline payload,
-- KEYS[8] the id's reservation (no longer needed once the record exists)
-- ARGV[1] message id, ARGV[2] first chunk size, ARGV[3] now (ms), ARGV[4] local id ('' = none),
-- ARGV[5] '1' when ARGV[6] is the payload itself, ARGV[7..] message field/value pairs
-- Returns 'exists' (id collision), 'uploading' or 'accepted'.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('DEL', KEYS[8])
if ARGV[5] == '1' then
  redis.call('SET', KEYS[7], ARGV[6])
end
redis.call('HSET', KEYS[2], '1', ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[6], ARGV[1])
end
return accept_when_complete(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[3])
