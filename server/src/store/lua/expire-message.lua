-- Expires an accepted message the recipient never acknowledged: it leaves the inbox, becomes
-- undeliverable, and a non-delivery REPORT goes into the sender's inbox. Runs once per
-- message however often it is called (a retried job finds the message no longer accepted).
-- KEYS[1] message hash, KEYS[2] recipient inbox, KEYS[3] report hash, KEYS[4] report chunk sizes,
-- KEYS[5] sender inbox, KEYS[6] inbox sequence
-- ARGV[1] message id, ARGV[2] now (ms), ARGV[3] report id, ARGV[4] status description
-- Returns 'expired' or 'unchanged'.
local message = redis.call('HMGET', KEYS[1], 'status', 'sender', 'recipient', 'workflowId', 'localId', 'subject')
if message[1] ~= 'accepted' then
  return 'unchanged'
end
redis.call('HSET', KEYS[1], 'status', 'undeliverable', 'statusCode', '14', 'statusEvent', 'SEND',
  'statusDescription', ARGV[4], 'statusSuccess', '0', 'statusAt', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
-- A report that is not collected just expires: there is nobody to report that to.
if message[2] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[3],
    'id', ARGV[3], 'type', 'REPORT', 'sender', '', 'recipient', message[2],
    'workflowId', message[4] or '', 'localId', message[5] or '', 'subject', message[6] or '',
    'partnerId', '', 'fileName', '', 'checksum', '', 'contentType', '', 'compressed', '0', 'encrypted', '0',
    'contentEncoding', '', 'totalChunks', '0', 'linkedMessageId', ARGV[1],
    'status', 'uploading', 'statusCode', '14', 'statusEvent', 'SEND', 'statusDescription', ARGV[4],
    'statusSuccess', '0', 'createdAt', ARGV[2], 'statusAt', ARGV[2])
  -- No chunks to wait for: this puts the report straight into the sender's inbox.
  accept_when_complete(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[3], ARGV[2])
end
return 'expired'
