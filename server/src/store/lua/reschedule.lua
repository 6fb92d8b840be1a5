-- Sets a claimed message's next check once its due steps are done ('' when its life is over).
-- Had someone asked for an earlier check meanwhile (the lease changed: the message changed
-- while its steps ran), the earlier of the two times stands.
-- The claim leaves the shard's leases, unless another worker has claimed the check since.
-- KEYS[1] schedule shard, KEYS[2] its leases
-- ARGV[1] message id, ARGV[2] the claim's lease end (ms), ARGV[3] next check (ms) or ''
if tonumber(redis.call('HGET', KEYS[2], ARGV[1])) == tonumber(ARGV[2]) then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if tonumber(current) == tonumber(ARGV[2]) then
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[1], ARGV[1])
  else
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  end
elseif ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[1], 'XX', 'LT', ARGV[3], ARGV[1])
end
return 1
