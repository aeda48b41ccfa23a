-- The compare-and-set shared by replace-if-unchanged.lua and replace-many-if-unchanged.lua (each
-- script is this file followed by its own lines): replaces a cache value only if it still holds
-- the bytes the caller read, so that a write landing between the caller's read and the script is
-- never overwritten. `digest`: SHA-1 (hex) of the bytes read; `bytes`: what to store, empty to
-- delete the key; `ttl`: physical TTL in ms, empty for none; `frame`: for a sliding entry (format
-- 3), the length of its frame of timings, which `digest` leaves out: reads move those timings
-- (get-sliding.lua) without making it another value. An empty `digest` means the caller read no
-- value: then the key is written only if it still holds none. Returns 1 when replaced, 0 when
-- the value changed (or vanished, or appeared) since it was read.
local function unchanged(current, digest, frame_arg)
  if digest == '' then
    return not current
  end
  if not current then
    return false
  end
  local frame = tonumber(frame_arg) or 0
  if frame > 0 then
    if #current <= frame or string.byte(current, 1) ~= 48 then
      return false
    end
    current = string.sub(current, frame + 1)
  end
  return redis.sha1hex(current) == digest
end

-- Whether a factory run holding a lease under `token` may still write: not once another holder
-- has the lease (a forced run took it over, or it expired and was taken again). A lease that
-- expired with nobody taking it leaves the write to the compare. An empty `token`: no lease.
local function lease_allows(lease_key, token)
  if token == nil or token == '' then
    return true
  end
  local holder = redis.call('GET', lease_key)
  return not holder or holder == token
end

local function replace_if_unchanged(key, digest, bytes, ttl, frame_arg)
  if not unchanged(redis.call('GET', key), digest, frame_arg) then
    return 0
  end
  if bytes == '' then
    redis.call('DEL', key)
  elseif ttl == '' then
    redis.call('SET', key, bytes)
  else
    redis.call('SET', key, bytes, 'PX', ttl)
  end
  return 1
end
