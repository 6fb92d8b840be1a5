-- The sequence of a new upload of one of a message's chunks (the start of its version): greater
-- than any given before for the message, so that of two uploads of one chunk the one begun later
-- is kept (store-chunk.lua).
-- KEYS[1] message hash
-- Returns the sequence, or false when there is no such message (never creating its hash).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return redis.call('HINCRBY', KEYS[1], 'chunkUploads', 1)
