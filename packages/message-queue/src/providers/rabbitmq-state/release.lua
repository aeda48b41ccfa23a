-- Puts leased jobs back to queued (graceful close); their message is requeued as it is (and
-- dropped at delivery for a job cancelled while active, which is dead-lettered as cancelled).
-- ARGV: prefix, now, then ids.
local now = tonumber(ARGV[2])
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = jobKey(id)
  if redis.call('HGET', key, 's') == 'a' then
    if redis.call('ZSCORE', CANCELLED, id) then
      local err = cancelError(id, now)
      redis.call('HSET', key, 'e', err, 'f', ARGV[2])
      move(id, 'a', 'f', now)
      local record = decode(redis.call('HGET', key, 'r'))
      -- A flow parent this releases is published by the next maintain pass (outbox deadline: now).
      if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now, now) end
    else
      move(id, 'a', 'q', now)
    end
  end
end
return publishes
