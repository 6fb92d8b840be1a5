-- Changes a mailbox's name and ODS code, moving it from its old ODS code's lookup index to the
-- new one's in the same step: a lookup never finds it under both codes, or under neither.
-- KEYS[1] mailbox hash, KEYS[2] the mailbox set of the ODS code it was read with,
-- KEYS[3] the mailbox set of the new ODS code, KEYS[4] the directory's change counter
-- ARGV[1] the name it was read with, ARGV[2] the ODS code it was read with,
-- ARGV[3] the new name, ARGV[4] the new ODS code
-- Returns 'ok', 'not_found', or 'stale' (changed since it was read, so KEYS[2] may not be its
-- index: read it again).
local current = redis.call('HMGET', KEYS[1], 'id', 'name', 'odsCode')
local id = current[1]
if not id then
  return 'not_found'
end
if (current[2] or '') ~= ARGV[1] or (current[3] or '') ~= ARGV[2] then
  return 'stale'
end
redis.call('HSET', KEYS[1], 'name', ARGV[3], 'odsCode', ARGV[4])
if ARGV[4] ~= ARGV[2] then
  redis.call('SREM', KEYS[2], id)
  redis.call('SADD', KEYS[3], id)
end
redis.call('INCR', KEYS[4])
return 'ok'
