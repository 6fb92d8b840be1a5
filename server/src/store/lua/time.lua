-- Redis's clock, on the node that holds KEYS[1]: one clock for every process of a deployment,
-- whatever their hosts' clocks say.
-- KEYS[1] a key whose node is asked
-- Returns { seconds, microseconds }.
return redis.call('TIME')
