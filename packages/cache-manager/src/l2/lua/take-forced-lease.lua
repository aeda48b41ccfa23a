-- Takes a key's compute lease for a `forceFresh` run (its token starts with 'forced:'). A lease
-- held by a plain run (a miss's, an early refresh) is replaced: that run may have read the source
-- before the change the forced call was made for, and its write, which checks the lease
-- (compare-and-set.lua's `lease_allows`), now fails. A lease held by a forced run is kept: the
-- caller waits for that run, so forced calls made together share one. No clock is compared.
-- KEYS[1] lease key. ARGV[1] token, ARGV[2] lease in ms.
-- Returns 1 when taken (free before, or already ours), 2 when a plain holder's was replaced,
-- 0 when a forced run holds it.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return 1
end
if holder and string.sub(holder, 1, 7) == 'forced:' then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if holder then
  return 2
end
return 1
