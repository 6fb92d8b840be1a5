-- Gives up on an upload that was never completed: the message becomes an error.
-- KEYS[1] message hash; ARGV[1] now (ms), ARGV[2] status code, ARGV[3] status event, ARGV[4] status description
-- Returns 'abandoned' or 'unchanged'.
if redis.call('HGET', KEYS[1], 'status') ~= 'uploading' then
  return 'unchanged'
end
redis.call('HSET', KEYS[1], 'status', 'error', 'statusCode', ARGV[2], 'statusEvent', ARGV[3],
  'statusDescription', ARGV[4], 'statusSuccess', '0', 'statusAt', ARGV[1])
return 'abandoned'
