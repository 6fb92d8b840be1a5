-- Records chunk n of an uploading message (already in object storage); accepts the message
-- when it was the last one missing. A chunk stored again replaces its earlier size.
-- KEYS[1] message hash, KEYS[2] chunk sizes
-- ARGV[1] sender mailbox, ARGV[2] chunk number, ARGV[3] chunk size, ARGV[4] now (ms),
-- ARGV[5] the chunk's content encoding, ARGV[6] maximum message size (bytes)
-- Returns 'not_found', 'forbidden', 'locked', 'range', 'encoding', 'too_large' (not recorded),
-- 'uploading' or 'accepted'.
local fields = redis.call('HMGET', KEYS[1], 'sender', 'status', 'totalChunks', 'contentEncoding')
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
local stored = 0
for _, size in ipairs(redis.call('HVALS', KEYS[2])) do
  stored = stored + tonumber(size)
end
local replaced = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if stored - replaced + tonumber(ARGV[3]) > tonumber(ARGV[6]) then
  return 'too_large'
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return accept_when_complete(KEYS[1], KEYS[2], ARGV[4])
