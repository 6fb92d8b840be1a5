-- Moves an uploading message to accepted, into the recipient's inbox, once every chunk
-- 1..N is stored. Returns the message status after the check.
-- message_key: message hash; chunks_key: hash chunk number -> size;
-- inbox_key: recipient's inbox sorted set; sequence_key: inbox order counter.
local function accept_when_complete(message_key, chunks_key, inbox_key, sequence_key, message_id, now_ms)
  local total = tonumber(redis.call('HGET', message_key, 'totalChunks'))
  if redis.call('HLEN', chunks_key) < total then
    return 'uploading'
  end
  local size = 0
  for n = 1, total do
    local chunk_size = redis.call('HGET', chunks_key, tostring(n))
    if not chunk_size then
      return 'uploading'
    end
    size = size + tonumber(chunk_size)
  end
  local sequence = redis.call('INCR', sequence_key)
  redis.call('HSET', message_key, 'status', 'accepted', 'size', size, 'acceptedAt', now_ms,
    'statusAt', now_ms, 'inboxSequence', sequence)
  redis.call('ZADD', inbox_key, sequence, message_id)
  return 'accepted'
end
