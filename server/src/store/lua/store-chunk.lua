-- Records chunk n of an uploading message (already in object storage, as the object of its
-- own upload, named by its version); accepts the message when it was the last one missing. A
-- chunk stored again replaces the earlier one's size and version, unless that one's upload
-- began later (its version, from allocate-chunk-version.lua, is the greater).
-- KEYS[1] message hash
-- ARGV[1] sender mailbox, ARGV[2] chunk number, ARGV[3] chunk size, ARGV[4] now (ms),
-- ARGV[5] the chunk's content encoding, ARGV[6] maximum message size (bytes), ARGV[7] version
-- Returns {outcome, replaced}: outcome 'not_found', 'forbidden', 'abandoned' (its lifecycle gave up
-- waiting: status 'error'), 'locked', 'range', 'encoding', 'too_large' (not recorded), 'uploading' or 'accepted'; replaced the version of the copy
-- no longer recorded, to delete ('' for chunk 1 as sent; this upload's own when a later one is recorded), false when none.
local chunk_field = 'chunk:' .. ARGV[2]
local version_field = 'chunkVersion:' .. ARGV[2]
local fields = redis.call('HMGET', KEYS[1], 'sender', 'status', 'totalChunks', 'contentEncoding', 'storedBytes', chunk_field, version_field)
if not fields[1] then
  return {'not_found', false}
end
if fields[1] ~= ARGV[1] then
  return {'forbidden', false}
end
-- This upload recorded already, or one begun after it: the command runs again because its answer
-- was lost with the connection (ioredis sends it again), maybe after a retry of the upload was
-- recorded meanwhile, or a slower upload ends after its retry. Answered as the first run was,
-- never replacing the copy recorded: this upload's own copy is deleted only when it is not that.
-- (No version: chunk 1 as sent, or one recorded by an earlier release, which any upload replaces.)
local recorded = tonumber(fields[7] or '') or 0
local version = tonumber(ARGV[7])
if version <= recorded then
  local own = version < recorded and ARGV[7] or false
  if fields[2] == 'uploading' then return {'uploading', own} end
  if fields[2] == 'error' then return {'abandoned', own} end
  return {'accepted', own}
end
if fields[2] == 'error' then
  return {'abandoned', false}
end
if fields[2] ~= 'uploading' then
  return {'locked', false}
end
if tonumber(ARGV[2]) > tonumber(fields[3]) then
  return {'range', false}
end
if (fields[4] or '') ~= ARGV[5] then
  return {'encoding', false}
end
local replaced = tonumber(fields[6] or '0')
local stored = tonumber(fields[5] or '0') - replaced + tonumber(ARGV[3])
if stored > tonumber(ARGV[6]) then
  return {'too_large', false}
end
redis.call('HSET', KEYS[1], chunk_field, ARGV[3], version_field, ARGV[7], 'storedBytes', stored)
if not fields[6] then
  redis.call('HINCRBY', KEYS[1], 'storedChunks', 1)
end
return {accept_when_complete(KEYS[1], ARGV[4]), fields[6] and (fields[7] or '') or false}
