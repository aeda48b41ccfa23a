-- Reads a cache value and slides it when it is a sliding entry still fresh (see slide-frame.lua,
-- which comes before these lines): the read of a cache whose entries slide.
-- KEYS[1]: the value's key. ARGV[1]: the caller's clock in ms.
-- Returns the value as stored after the read, or nil when absent.
slide(KEYS[1], tonumber(ARGV[1]))
return redis.call('GET', KEYS[1])
