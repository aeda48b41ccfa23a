-- Releases a lease only if the caller still holds it (its token is the value), so a holder
-- whose lease expired cannot free the lease of the next holder.
-- KEYS[1] lease key, ARGV[1] token. Returns 1 when released.
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
