-- Returns the shared msgpack record structures: [epoch, structure...]. Creates the list with
-- the caller's new epoch when it does not exist (first use, or after it was evicted or flushed:
-- values written under the old epoch then decode as misses).
-- KEYS[1] list key, ARGV[1] a new random epoch.
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('rpush', KEYS[1], ARGV[1])
end
return redis.call('lrange', KEYS[1], 0, -1)
