-- Records a new message whose first chunk is already in object storage (or, for a small
-- message, is stored here in its record), and accepts it at once when it has no more chunks.
-- Chunk sizes are fields 'chunk:<n>' of the record, counted in 'storedChunks' and 'storedBytes'.
-- KEYS[1] message hash, KEYS[2] the id's reservation (no longer needed once the record exists)
-- ARGV[1] first chunk size ('' for a message without chunks: a report), ARGV[2] now (ms),
-- ARGV[3] the payload itself ('' when it is in object storage), ARGV[4] '1' when the id was not
-- reserved beforehand (a small message claims it here), ARGV[5..] field/value pairs
-- Returns 'exists' (id collision, or a retried report), 'uploading' or 'accepted'.
if redis.call('EXISTS', KEYS[1]) == 1 or (ARGV[4] == '1' and redis.call('EXISTS', KEYS[2]) == 1) then
  return 'exists'
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('DEL', KEYS[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'payload', ARGV[3])
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'chunk:1', ARGV[1], 'storedChunks', 1, 'storedBytes', ARGV[1])
end
return accept_when_complete(KEYS[1], ARGV[2])
