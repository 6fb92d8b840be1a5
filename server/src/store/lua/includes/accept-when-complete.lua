-- Moves an uploading message to accepted once all its chunks are stored. Returns the message
-- status after the check. Putting it into the recipient's inbox is the next step
-- (deliver.lua): the inbox lives in the recipient's hash slot.
-- message_key: message hash, which counts its stored chunks and their bytes.
local function accept_when_complete(message_key, now_ms)
  local fields = redis.call('HMGET', message_key, 'totalChunks', 'storedChunks', 'storedBytes')
  if tonumber(fields[2] or '0') < tonumber(fields[1]) then
    return 'uploading'
  end
  redis.call('HSET', message_key, 'status', 'accepted', 'size', fields[3] or '0', 'acceptedAt', now_ms, 'statusAt', now_ms)
  return 'accepted'
end
