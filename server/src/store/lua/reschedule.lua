-- Sets a claimed message's next check once its due steps are done ('' when its life is over).
-- Had someone asked for an earlier check meanwhile (the lease changed: the message changed
-- while its steps ran), the earlier of the two times stands.
-- The claim leaves the shard's leases, unless another worker has claimed the check since.
-- The message's failure entry is set (a failed check, retried) or removed, in the same step: a
-- removal left for a command of its own, lost after a message's last check, stayed for ever.
-- Only by the claim's holder: a worker whose lease another has taken since reports late, and
-- its failure would outlive the message that other worker ended (or its success hide the
-- other's failure).
-- Nor, while another worker holds the check now (it took it when this claim's lease ended: a
-- check that outlasted its lease, object storage answering slowly), is the schedule touched: an
-- earlier time would end the other's lease, a third worker would take the check while the other
-- still runs it, and the other's release, finding the entry moved, would not end the message's
-- life. That worker's release sets the next check; once it has, a late worker's earlier time
-- stands, as anyone's earlier request does.
-- KEYS[1] schedule shard, KEYS[2] its leases, KEYS[3] its failures
-- ARGV[1] message id, ARGV[2] the claim's lease end (ms), ARGV[3] next check (ms) or '',
-- ARGV[4] the failure (JSON) or '' when the check succeeded
local lease = redis.call('HGET', KEYS[2], ARGV[1])
local held = tonumber(lease) == tonumber(ARGV[2])
if lease and not held then
  return 1
end
if held then
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
if not held then
  return 1
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
end
return 1
