-- Records chunk n of an uploading message (already in object storage, as the object of its
-- own upload, named by its version); accepts the message when it was the last one missing. A
-- chunk stored again replaces the earlier one's size and version, unless that one's upload
-- began later (its version, from allocate-chunk-version.lua, is the greater).
-- KEYS[1] message hash
-- ARGV[1] sender mailbox, ARGV[2] chunk number, ARGV[3] chunk size, ARGV[4] now (ms),
-- ARGV[5] the chunk's content encoding, ARGV[6] maximum message size (bytes), ARGV[7] version
-- Returns {outcome, replaced}: outcome 'not_found', 'forbidden', 'abandoned' (its lifecycle gave up
-- waiting: status 'error'), 'locked', 'range', 'encoding', 'too_large' (not recorded), 'uploading', 'accepted'
-- (deliver it), or 'recorded' (the chunk is this upload's or a later one's, nothing to deliver);
-- replaced the version of the copy no longer recorded, to delete ('' for chunk 1 as sent; this
-- upload's own when a later one is recorded), false when none.
local chunk_field = 'chunk:' .. ARGV[2]
local version_field = 'chunkVersion:' .. ARGV[2]
local fields = redis.call('HMGET', KEYS[1], 'sender', 'status', 'totalChunks', 'contentEncoding', 'storedBytes', chunk_field, version_field)
if not fields[1] then
  return {'not_found', false}
end
if fields[1] ~= ARGV[1] then
  return {'forbidden', false}
end
-- A version is '<sequence>-<random>' (allocate-chunk-version.lua); chunk 1 as sent, or a chunk
-- recorded by an earlier release (a random version), counts as sequence 0: any upload replaces it.
local function sequence(version)
  local digits = version and string.match(version, '^(%d+)%-')
  return digits and tonumber(digits) or 0
end
-- This very upload recorded already: the command runs again, its answer lost with the
-- connection (ioredis sends it again). Answered as the first run was, replacing nothing.
if fields[7] == ARGV[7] then
  if fields[2] == 'uploading' then return {'uploading', false} end
  if fields[2] == 'error' then return {'abandoned', false} end
  if fields[2] == 'accepted' then return {'accepted', false} end
  return {'recorded', false}
end
-- An upload begun after this one recorded already (a retry of it recorded first, maybe before
-- this command ran again): that copy stays the chunk, this one's is deleted, and what there is
-- to deliver is that upload's to deliver.
if sequence(ARGV[7]) <= sequence(fields[7]) then
  if fields[2] == 'error' then return {'abandoned', false} end
  return {'recorded', ARGV[7]}
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
