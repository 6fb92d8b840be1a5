-- Allows or denies one workflow for sending or receiving, keeping the receivers index in step.
-- KEYS[1] mailbox hash, KEYS[2] the workflow's receiver set, KEYS[3] the directory's change counter
-- ARGV[1] mailbox id, ARGV[2] 'sendWorkflows' or 'receiveWorkflows', ARGV[3] workflow id,
-- ARGV[4] 'allow' or 'deny'
-- Returns 'ok', 'not_found', 'wildcard' (denying one workflow of a mailbox that allows all),
-- 'absent' (denying one not allowed: nothing changes) or 'present' (allowing one allowed already:
-- nothing changes, but the receivers index is mended should it lack the mailbox).
local current = redis.call('HGET', KEYS[1], ARGV[2])
if not current then
  return 'not_found'
end
local workflows = cjson.decode(current)
local kept = {}
local found = false
for _, workflow in ipairs(workflows) do
  if workflow == '*' and ARGV[4] == 'deny' and ARGV[3] ~= '*' then
    return 'wildcard'
  end
  if workflow ~= ARGV[3] then
    table.insert(kept, workflow)
  else
    found = true
  end
end
if ARGV[4] == 'deny' and not found then
  return 'absent'
end
-- Allowing one allowed already changes nothing but the receivers index, should it lack the mailbox.
local changed = ARGV[4] == 'deny' or not found
if changed then
  if ARGV[4] == 'allow' then
    table.insert(kept, ARGV[3])
  end
  -- cjson encodes an empty table as {}; the field must stay a JSON array.
  local encoded = #kept == 0 and '[]' or cjson.encode(kept)
  redis.call('HSET', KEYS[1], ARGV[2], encoded)
end
if ARGV[2] == 'receiveWorkflows' and ARGV[3] ~= '*' then
  local indexed = redis.call(ARGV[4] == 'allow' and 'SADD' or 'SREM', KEYS[2], ARGV[1]) == 1
  if changed or indexed then
    redis.call('INCR', KEYS[3])
  end
end
return changed and 'ok' or 'present'
