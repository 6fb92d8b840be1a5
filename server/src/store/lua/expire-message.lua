-- Expires an accepted message the recipient never acknowledged (or whose payload was lost): it
-- becomes undeliverable, and is marked as having its expiry to finish (out of the inbox, a
-- non-delivery report to the sender: steps on other hash slots, each repeatable, done after this).
-- KEYS[1] message hash
-- ARGV[1] now (ms), ARGV[2] the report's id, ARGV[3] status code, ARGV[4] status event,
-- ARGV[5] status description
-- Returns 'expired' or 'unchanged' (no longer accepted: a retried job).
local message = redis.call('HMGET', KEYS[1], 'status', 'sender')
if message[1] ~= 'accepted' then
  return 'unchanged'
end
redis.call('HSET', KEYS[1], 'status', 'undeliverable', 'statusCode', ARGV[3], 'statusEvent', ARGV[4],
  'statusDescription', ARGV[5], 'statusSuccess', '0', 'statusAt', ARGV[1], 'expiryPending', '1')
-- A report that is not collected just expires: there is nobody to report that to.
if message[2] ~= '' then
  redis.call('HSET', KEYS[1], 'reportId', ARGV[2])
end
return 'expired'
