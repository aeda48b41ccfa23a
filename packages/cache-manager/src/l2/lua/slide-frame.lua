-- The sliding step shared by get-sliding.lua and slide.lua (each script is this file followed by
-- its own lines). A sliding entry (format 3: a frame of timings before the encoded entry) still
-- fresh at the caller's clock has its freshness moved to now + window (capped by its bound), and
-- its physical TTL follows the new end of grace (never shortened). The timings sit at fixed
-- offsets in front of the encoded body, so only the frame is read (GETRANGE) and written
-- (SETRANGE): nothing is decoded and the value is not copied. The caller's clock, not Redis's,
-- decides freshness, as everywhere else in the cache.
-- Frame: byte 1 header (0x30), then big-endian doubles expiresAt, staleUntil, bound (-1: none)
-- and window, then the encoded entry (see entry-codec.ts).
-- Bytes under the prefix may be another app's whose first byte happens to be 0x30 ("0"): they are
-- moved only if they look like an entry of ours throughout: the entry's own header after the frame
-- (format 1 or 4, a known compression), finite timings in order, a positive window. Anything else
-- is left as it is (the reader counts it as undecodable).
local MAX_MS = 1e14 -- ~3,000 years: printed exactly by Lua (%.14g), so PEXPIRE takes it as an integer
local function slide(key, now)
  local frame = redis.call('GETRANGE', key, 0, 33)
  if #frame < 34 or string.byte(frame, 1) ~= 48 then
    return
  end
  local body = string.byte(frame, 34)
  local version = math.floor(body / 16)
  if (version ~= 1 and version ~= 4) or body % 8 > 3 then
    return
  end
  local expiresAt = struct.unpack('>d', frame, 2)
  if not (now < expiresAt) then
    return
  end
  local staleUntil = struct.unpack('>d', frame, 10)
  local bound = struct.unpack('>d', frame, 18)
  local window = struct.unpack('>d', frame, 26)
  if
    not (window > 0 and window < MAX_MS and staleUntil >= expiresAt and staleUntil - now < MAX_MS)
    or not (bound == -1 or bound >= expiresAt)
  then
    return
  end
  local nextExpiry = now + window
  if bound >= 0 and bound < nextExpiry then
    nextExpiry = bound
  end
  if nextExpiry <= expiresAt then
    return
  end
  local nextStale = nextExpiry + (staleUntil - expiresAt)
  redis.call('SETRANGE', key, 1, struct.pack('>d>d', nextExpiry, nextStale))
  -- GT: never shorter than it is. A factory run replacing this value extended it to outlive the
  -- run (extend-if-unchanged.lua); a slide during the run must not cut that short.
  redis.call('PEXPIRE', key, math.max(1, math.ceil(nextStale - now)), 'GT')
end
