-- Acknowledges an accepted message: it leaves the recipient's inbox for good.
-- KEYS[1] message hash, KEYS[2] recipient inbox
-- ARGV[1] message id, ARGV[2] recipient mailbox, ARGV[3] now (ms)
-- Returns 'not_found' (no such message for this recipient), 'gone' (not downloadable any
-- more) or 'acknowledged' (now, or already before: clients retry).
local fields = redis.call('HMGET', KEYS[1], 'recipient', 'status')
if fields[1] ~= ARGV[2] then
  return 'not_found'
end
if fields[2] == 'acknowledged' then
  return 'acknowledged'
end
if fields[2] ~= 'accepted' then
  return 'gone'
end
redis.call('HSET', KEYS[1], 'status', 'acknowledged', 'acknowledgedAt', ARGV[3], 'statusAt', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'acknowledged'
