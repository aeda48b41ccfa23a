-- Reads a cache value and, when it is a sliding entry (format 3: a frame of timings before the
-- encoded entry) still fresh at the caller's clock, moves its freshness to now + window
-- (capped by its bound) in the same call: the timings sit at fixed offsets in front of the
-- encoded body, so nothing is decoded, and the physical TTL follows the new end of grace.
-- The caller's clock, not Redis's, decides freshness, as everywhere else in the cache.
-- Frame: byte 1 header (0x30), then big-endian doubles expiresAt, staleUntil, bound (-1: none)
-- and window, then the encoded entry (see entry-codec.ts).
-- KEYS[1]: the value's key. ARGV[1]: the caller's clock in ms.
-- Returns the value as stored after the read, or nil when absent.
local value = redis.call('GET', KEYS[1])
if not value or #value < 33 or string.byte(value, 1) ~= 48 then
  return value
end
local now = tonumber(ARGV[1])
local expiresAt = struct.unpack('>d', value, 2)
if now >= expiresAt then
  return value
end
local staleUntil = struct.unpack('>d', value, 10)
local bound = struct.unpack('>d', value, 18)
local window = struct.unpack('>d', value, 26)
local nextExpiry = now + window
if bound >= 0 and bound < nextExpiry then
  nextExpiry = bound
end
if nextExpiry <= expiresAt then
  return value
end
local nextStale = nextExpiry + (staleUntil - expiresAt)
local timings = struct.pack('>d>d', nextExpiry, nextStale)
redis.call('SETRANGE', KEYS[1], 1, timings)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(nextStale - now)))
return string.sub(value, 1, 1) .. timings .. string.sub(value, 18)
