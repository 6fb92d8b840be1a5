-- Redis's clock, on the node that holds KEYS[1].
-- KEYS[1] a key whose node is asked
-- Returns now in milliseconds (redis_now_ms).
return redis_now_ms()
