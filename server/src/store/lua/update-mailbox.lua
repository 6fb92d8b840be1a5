-- Sets fields of an existing mailbox.
-- KEYS[1] mailbox hash; ARGV field/value pairs
-- Returns 1 when updated, 0 when there is no such mailbox.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
