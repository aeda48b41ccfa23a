-- ARGV: prefix, outbox deadline, now, then id, fresh record pairs. Moves dead jobs back to
-- queued with a new message. Returns the publishes (id, token, record).
local now = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HGET', jobKey(id), 's') == 'f' then
    redis.call('HSET', jobKey(id), 'r', ARGV[i + 1])
    redis.call('HDEL', jobKey(id), 'e', 'f', 'st', 'res')
    requeue(id, 'f', ARGV[i + 1], now, tonumber(ARGV[2]))
  end
end
return publishes
