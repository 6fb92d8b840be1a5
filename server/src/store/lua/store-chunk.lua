-- Records chunk n of an uploading message (already in object storage); accepts the message
-- when it was the last one missing. A chunk stored again replaces its earlier size.
-- KEYS[1] message hash
-- ARGV[1] sender mailbox, ARGV[2] chunk number, ARGV[3] chunk size, ARGV[4] now (ms),
-- ARGV[5] the chunk's content encoding, ARGV[6] maximum message size (bytes)
-- Returns 'not_found', 'forbidden', 'locked', 'range', 'encoding', 'too_large' (not recorded),
-- 'uploading' or 'accepted'.
local chunk_field = 'chunk:' .. ARGV[2]
local fields = redis.call('HMGET', KEYS[1], 'sender', 'status', 'totalChunks', 'contentEncoding', 'storedBytes', chunk_field)
if not fields[1] then
  return 'not_found'
end
if fields[1] ~= ARGV[1] then
  return 'forbidden'
end
if fields[2] ~= 'uploading' then
  return 'locked'
end
if tonumber(ARGV[2]) > tonumber(fields[3]) then
  return 'range'
end
if (fields[4] or '') ~= ARGV[5] then
  return 'encoding'
end
local replaced = tonumber(fields[6] or '0')
local stored = tonumber(fields[5] or '0') - replaced + tonumber(ARGV[3])
if stored > tonumber(ARGV[6]) then
  return 'too_large'
end
redis.call('HSET', KEYS[1], chunk_field, ARGV[3], 'storedBytes', stored)
if not fields[6] then
  redis.call('HINCRBY', KEYS[1], 'storedChunks', 1)
end
return accept_when_complete(KEYS[1], ARGV[4])
