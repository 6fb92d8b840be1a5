-- Acknowledges an accepted message; taking it out of the recipient's inbox is the next step
-- (the inbox lives in the recipient's hash slot).
-- KEYS[1] message hash
-- ARGV[1] recipient mailbox, ARGV[2] now (ms)
-- Returns 'not_found' (no such message for this recipient), 'uploading' (not downloadable
-- yet), 'gone' (not downloadable any more) or 'acknowledged' (now, or already before: clients
-- retry).
local fields = redis.call('HMGET', KEYS[1], 'recipient', 'status')
if fields[1] ~= ARGV[1] then
  return 'not_found'
end
if fields[2] == 'acknowledged' then
  return 'acknowledged'
end
if fields[2] == 'uploading' then
  return 'uploading'
end
if fields[2] ~= 'accepted' then
  return 'gone'
end
redis.call('HSET', KEYS[1], 'status', 'acknowledged', 'acknowledgedAt', ARGV[2], 'statusAt', ARGV[2])
return 'acknowledged'
