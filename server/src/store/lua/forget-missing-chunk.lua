-- Forgets the chunk a download noted missing, found in object storage after all: only the one
-- the check verified, as a download may have noted another meanwhile, for the next check.
-- KEYS[1] message hash
-- ARGV[1] the chunk's number
-- Returns 1 when forgotten, 0 when another (or none) is noted.
if redis.call('HGET', KEYS[1], 'missingChunk') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'missingChunk')
end
return 0
