-- Appends structures to the shared list only if it still has the length the caller saw
-- (compare-and-set: record ids are list positions, so they must never be reassigned), and
-- never past the maximum. Returns the list after, so the caller learns what won.
-- KEYS[1] list key, ARGV[1] expected length (epoch included), ARGV[2] maximum length,
-- ARGV[3..] structures (JSON arrays of keys).
if redis.call('llen', KEYS[1]) == tonumber(ARGV[1]) then
  local room = tonumber(ARGV[2]) - tonumber(ARGV[1])
  for index = 3, math.min(#ARGV, room + 2) do
    redis.call('rpush', KEYS[1], ARGV[index])
  end
end
return redis.call('lrange', KEYS[1], 0, -1)
