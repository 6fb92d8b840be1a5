-- Claims the messages of one schedule shard whose next lifecycle check is due: each is moved
-- to the end of a lease, so no other worker takes it meanwhile, and one whose worker dies
-- comes due again when the lease ends.
-- The claim is noted in the shard's leases, so that what workers hold can be counted.
-- KEYS[1] schedule shard (sorted set: message id -> due time, ms), KEYS[2] its leases (hash: id -> lease end)
-- ARGV[1] now (ms), ARGV[2] lease end (ms), ARGV[3] most to claim
-- Returns the claimed ids.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('HSET', KEYS[2], id, ARGV[2])
end
return due
