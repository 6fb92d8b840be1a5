-- Records a new message whose first chunk is already in object storage (or, for a small
-- message, is stored here with it), and accepts it at once when it has no more chunks.
-- KEYS[1] message hash, KEYS[2] chunk sizes, KEYS[3] inline payload, KEYS[4] the id's
-- reservation (no longer needed once the record exists)
-- ARGV[1] first chunk size ('' for a message without chunks: a report), ARGV[2] now (ms),
-- ARGV[3] '1' when ARGV[4] is the payload itself, ARGV[5..] message field/value pairs
-- Returns 'exists' (id collision, or a retried report), 'uploading' or 'accepted'.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('DEL', KEYS[4])
if ARGV[3] == '1' then
  redis.call('SET', KEYS[3], ARGV[4])
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[2], '1', ARGV[1])
end
return accept_when_complete(KEYS[1], KEYS[2], ARGV[2])
