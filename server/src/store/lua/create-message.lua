-- Records a new message whole, from the fields its caller made: accepted already when chunk 1
-- was all of it, else uploading with chunk 1's size as field 'chunk:1' (counted in
-- 'storedChunks' and 'storedBytes'); a small message's payload is one of the fields.
-- KEYS[1] message hash, KEYS[2] the id's reservation (no longer needed once the record exists)
-- ARGV[1] '1' when the id was not reserved beforehand (a small message claims it here),
-- ARGV[2..] field/value pairs
-- Returns 1 when recorded, 0 when the id is taken (a clash, or a retried report).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if ARGV[1] == '1' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
  end
else
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
