-- Forgets the chunk a download noted missing, found in object storage after all: only the note
-- the check verified, as a download may have noted the chunk again meanwhile (lost since the
-- check looked), or another chunk, for the next check.
-- KEYS[1] message hash
-- ARGV[1] the chunk's number, ARGV[2] the note verified (missingChunkNote, counted by each note)
-- Returns 1 when forgotten, 0 when another note (or none) stands.
local noted = redis.call('HMGET', KEYS[1], 'missingChunk', 'missingChunkNote')
if noted[1] == ARGV[1] and (noted[2] or '') == ARGV[2] then
  return redis.call('HDEL', KEYS[1], 'missingChunk')
end
return 0
