-- Recovers expired leases and applies retention.
-- ARGV: prefix, now, maxStalls, completedCount, completedAgeMs, deadCount, deadAgeMs, stall error JSON
local now = tonumber(ARGV[2])
local maxStalls = tonumber(ARGV[3])
local recovered, deadLettered = 0, 0
local expired = redis.call('ZRANGEBYSCORE', ACTIVE, '-inf', ARGV[2], 'LIMIT', 0, 500)
if #expired > 0 then
  redis.call('ZREM', ACTIVE, unpack(expired))
  local keys = {}
  for i, id in ipairs(expired) do keys[i] = P .. 'j:' .. id end
  local records = redis.call('MGET', unpack(keys))
  for i, id in ipairs(expired) do
    if records[i] then
      local record = cjson.decode(records[i])
      if redis.call('HINCRBY', P .. 'stalls', id, 1) > maxStalls then
        redis.call('HSET', P .. 'derr', id, ARGV[8])
        redis.call('ZADD', DEAD, ARGV[2], id)
        if type(record.P) == 'table' then
          childSettled(record.P.i, record.P.f, id, nil, ARGV[8], now)
        end
        deadLettered = deadLettered + 1
      else
        enqueue(id, record.p or 0, record.g, 0)
        recovered = recovered + 1
      end
    end
  end
end

local function trim(key, maxCount, maxAge)
  local removed = removeJobs(key, redis.call('ZRANGEBYSCORE', key, '-inf', fmt(now - maxAge), 'LIMIT', 0, 1000))
  local size = redis.call('ZCARD', key)
  if size > maxCount then
    removed = removed + removeJobs(key, redis.call('ZRANGE', key, 0, math.min(size - maxCount, 1000) - 1))
  end
  return removed
end
local removed = trim(COMPLETED, tonumber(ARGV[4]), tonumber(ARGV[5])) + trim(DEAD, tonumber(ARGV[6]), tonumber(ARGV[7]))
finish()
return {recovered, deadLettered, removed}
