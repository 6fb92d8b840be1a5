-- Notes chunk n of a message missing from object storage, for its lifecycle check to verify,
-- counting the notes: a check that finds the chunk there after all forgets only the note it
-- verified (forget-missing-chunk.lua). Nothing for a record that is gone.
-- KEYS[1] message hash
-- ARGV[1] the chunk's number
-- Returns the note's count, or 0 when there is no record.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'missingChunk', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'missingChunkNote', 1)
