-- Recovers expired leases and applies retention.
-- ARGV: prefix, now, maxStalls, completedCount, completedAgeMs, deadCount, deadAgeMs, stall error JSON
local now = tonumber(ARGV[2])
local maxStalls = tonumber(ARGV[3])
local recovered, deadLettered = 0, 0
-- Leases end by Redis's clock (see redisTime); `now` (the caller's) stamps what this pass writes.
local expired = redis.call('ZRANGEBYSCORE', ACTIVE, '-inf', fmt(redisTime()), 'LIMIT', 0, 500)
if #expired > 0 then
  local records = takeRecords(ACTIVE, expired)
  redis.call('HDEL', LEASES, unpack(expired))
  for i, id in ipairs(expired) do
    if records[i] then
      local record = decodeRecord(records[i])
      if redis.call('ZREM', CANCELLED, id) == 1 then
        -- Cancelled while active and its worker died: dead-lettered as cancelled, never rerun.
        local err = withAttempt(cancelError(id, now), record)
        redis.call('HSET', P .. 'derr', id, err)
        redis.call('ZADD', DEAD, ARGV[2], id)
        if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now) end
        deadLettered = deadLettered + 1
      elseif redis.call('HINCRBY', P .. 'stalls', id, 1) > maxStalls then
        local err = withAttempt(ARGV[8], record)
        redis.call('HSET', P .. 'derr', id, err)
        redis.call('ZADD', DEAD, ARGV[2], id)
        if type(record.P) == 'table' then
          childSettled(record.P.i, record.P.f, id, nil, err, now)
        end
        deadLettered = deadLettered + 1
      else
        enqueue(id, record.p or 0, record.g, 0)
        recovered = recovered + 1
      end
    end
  end
end

-- Up to 20,000 jobs per set per pass (in chunks), so a busy queue's retention keeps up.
local function trim(key, maxCount, maxAge)
  local removed = 0
  for _ = 1, 20 do
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', fmt(now - maxAge), 'LIMIT', 0, 1000)
    if #old == 0 then break end
    removed = removed + removeJobs(key, old)
  end
  local size = redis.call('ZCARD', key)
  local excess = math.min(size - maxCount, 20000)
  while excess > 0 do
    local chunk = math.min(excess, 1000)
    removed = removed + removeJobs(key, redis.call('ZRANGE', key, 0, chunk - 1))
    excess = excess - chunk
  end
  return removed
end
-- Leaked cancel records (their run ended without removing them, e.g. a job key deleted by hand),
-- older than the DLQ's age; never one of a job still active, whose worker has yet to see it.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', CANCELLED, '-inf', fmt(now - tonumber(ARGV[7])), 'LIMIT', 0, 1000)) do
  if not redis.call('ZSCORE', ACTIVE, id) then redis.call('ZREM', CANCELLED, id) end
end
local removed = trim(COMPLETED, tonumber(ARGV[4]), tonumber(ARGV[5])) + trim(DEAD, tonumber(ARGV[6]), tonumber(ARGV[7]))
finish()
-- Then the flow parents dead-lettered with a child (policy 'fail').
return {recovered, deadLettered, removed, #failedParents / 3}
