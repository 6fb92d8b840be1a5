-- Removes every trace of a message from Redis once its retention is over.
-- KEYS[1] message hash, KEYS[2] chunk sizes, KEYS[3] sender outbox, KEYS[4] sender's local-id
-- index, KEYS[5] recipient inbox, KEYS[6] inline payload
-- ARGV[1] message id
redis.call('DEL', KEYS[1], KEYS[2], KEYS[6])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
