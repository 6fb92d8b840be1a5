-- Moves an uploading message to accepted once every chunk 1..N is stored. Returns the
-- message status after the check. Putting it into the recipient's inbox is the next step
-- (deliver.lua): the inbox lives in the recipient's hash slot.
-- message_key: message hash; chunks_key: hash chunk number -> size.
local function accept_when_complete(message_key, chunks_key, now_ms)
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
  redis.call('HSET', message_key, 'status', 'accepted', 'size', size, 'acceptedAt', now_ms, 'statusAt', now_ms)
  return 'accepted'
end
