-- Records chunk n of an uploading message (already in object storage); accepts the message
-- when it was the last one missing. A chunk stored again replaces its earlier size.
-- KEYS[1] message hash, KEYS[2] chunk sizes, KEYS[3] recipient inbox, KEYS[4] inbox sequence
-- ARGV[1] message id, ARGV[2] sender mailbox, ARGV[3] chunk number, ARGV[4] chunk size,
-- ARGV[5] now (ms), ARGV[6] the chunk's content encoding, ARGV[7] maximum message size (bytes)
-- Returns 'not_found', 'forbidden', 'locked', 'range', 'encoding', 'too_large' (not recorded),
-- 'uploading' or 'accepted'.
local fields = redis.call('HMGET', KEYS[1], 'sender', 'status', 'totalChunks', 'contentEncoding')
if not fields[1] then
  return 'not_found'
end
if fields[1] ~= ARGV[2] then
  return 'forbidden'
end
if fields[2] ~= 'uploading' then
  return 'locked'
end
if tonumber(ARGV[3]) > tonumber(fields[3]) then
  return 'range'
end
if (fields[4] or '') ~= ARGV[6] then
  return 'encoding'
end
local stored = 0
for _, size in ipairs(redis.call('HVALS', KEYS[2])) do
  stored = stored + tonumber(size)
end
local replaced = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if stored - replaced + tonumber(ARGV[4]) > tonumber(ARGV[7]) then
  return 'too_large'
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return accept_when_complete(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[5])
