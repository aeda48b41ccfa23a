-- Replaces a cache value only if it still holds the bytes the caller read (compare-and-set),
-- so that a write landing between the caller's read and this script is never overwritten.
-- KEYS[1]: the value's key. ARGV[1]: SHA-1 (hex) of the bytes read; ARGV[2]: the bytes to
-- store, empty to delete the key; ARGV[3]: physical TTL in ms, empty for none; ARGV[4]: for a
-- sliding entry (format 3), the length of its frame of timings, which ARGV[1] leaves out:
-- reads move those timings (get-sliding.lua) without making it another value.
-- Returns 1 when replaced, 0 when the value changed (or vanished) since it was read.
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local frame = tonumber(ARGV[4]) or 0
if frame > 0 then
  if #current <= frame or string.byte(current, 1) ~= 48 then
    return 0
  end
  current = string.sub(current, frame + 1)
end
if redis.sha1hex(current) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
