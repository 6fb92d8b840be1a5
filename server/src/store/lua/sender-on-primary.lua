#!lua
-- A message's sender, as a primary holds it. A script with a shebang and without the no-writes
-- flag is refused by a replica (READONLY): a primary just made a replica in a failover still
-- answers reads, with what the new primary may never have had.
-- KEYS[1] message hash
-- Returns the sender, or false when there is no such message.
return redis.call('HGET', KEYS[1], 'sender')
