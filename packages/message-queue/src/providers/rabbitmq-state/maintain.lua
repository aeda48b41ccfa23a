-- Recovers expired leases (a new message; dead-lettered after maxStalls), republishes outbox
-- entries the broker never confirmed, and applies retention.
-- ARGV: prefix, now, maxStalls, completedCount, completedAgeMs, deadCount, deadAgeMs,
-- stall error JSON, outbox deadline. Returns {recovered, deadLettered, removed, flow parents
-- dead-lettered with a child (policy 'fail'), then publishes}.
local now = tonumber(ARGV[2])
local maxStalls = tonumber(ARGV[3])
local deadline = tonumber(ARGV[9])
local recovered, deadLettered = 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', INDEX.a, '-inf', ARGV[2], 'LIMIT', 0, 500)) do
  local key = jobKey(id)
  local raw = redis.call('HGET', key, 'r')
  if not raw then
    redis.call('ZREM', INDEX.a, id)
  elseif redis.call('ZSCORE', CANCELLED, id) then
    -- Cancelled while active and its worker died: dead-lettered as cancelled, never rerun.
    local record = decodeRecord(raw)
    local err = withAttempt(cancelError(id, now), record)
    redis.call('HSET', key, 'e', err, 'f', ARGV[2])
    move(id, 'a', 'f', now)
    if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now, deadline) end
    deadLettered = deadLettered + 1
  elseif redis.call('HINCRBY', key, 'st', 1) > maxStalls then
    local record = decodeRecord(raw)
    local err = withAttempt(ARGV[8], record)
    redis.call('HSET', key, 'e', err, 'f', ARGV[2])
    move(id, 'a', 'f', now)
    if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now, deadline) end
    deadLettered = deadLettered + 1
  else
    requeue(id, 'a', raw, now, deadline)
    recovered = recovered + 1
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', OUTBOX, '-inf', ARGV[2], 'LIMIT', 0, 500)) do
  local job = redis.call('HMGET', jobKey(id), 's', 't', 'r')
  if job[1] == 'q' then
    publish(id, job[3], tonumber(job[2]), deadline)
  else
    redis.call('ZREM', OUTBOX, id)
  end
end

local function trim(key, maxCount, maxAge)
  local removed = 0
  for _ = 1, 20 do
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', fmt(now - maxAge), 'LIMIT', 0, 1000)
    if #old == 0 then break end
    removed = removed + removeJobs(old)
  end
  local excess = math.min(redis.call('ZCARD', key) - maxCount, 20000)
  while excess > 0 do
    local chunk = math.min(excess, 1000)
    removed = removed + removeJobs(redis.call('ZRANGE', key, 0, chunk - 1))
    excess = excess - chunk
  end
  return removed
end
-- Leaked cancel records (their run ended without removing them, e.g. a job key deleted by hand),
-- older than the DLQ's age; never one of a job still active, whose worker has yet to see it.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', CANCELLED, '-inf', fmt(now - tonumber(ARGV[7])), 'LIMIT', 0, 1000)) do
  if redis.call('HGET', jobKey(id), 's') ~= 'a' then redis.call('ZREM', CANCELLED, id) end
end
local removed = trim(INDEX.c, tonumber(ARGV[4]), tonumber(ARGV[5])) + trim(INDEX.f, tonumber(ARGV[6]), tonumber(ARGV[7]))
local out = {recovered, deadLettered, removed, #failedParents / 3}
for _, value in ipairs(publishes) do out[#out + 1] = value end
return out
