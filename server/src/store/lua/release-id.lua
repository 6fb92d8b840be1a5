-- Ends a send's reservation of its message id when the send failed before recording its message
-- (cut off, refused mid-stream): only the reservation this claim made, by its value, as another
-- claim may hold the id now.
-- KEYS[1] the id's reservation
-- ARGV[1] the value of the claim that made it
-- Returns 1 when released, 0 when the reservation was not this claim's (or was gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
