-- Puts leased jobs back at the front of waiting (graceful close); one cancelled while active is
-- dead-lettered as cancelled instead. A job whose lease is no longer the caller's (another
-- worker holds it) is left alone. With maxStalls (not ''), the tries ran past their leases (the
-- worker stalled): each counts a stall, as lease recovery does, and a job past maxStalls is
-- dead-lettered with the stall error instead of waiting again (it was given back for ever).
-- ARGV: prefix, now, maxStalls or '', stall error JSON or '', then id, priority, group, lease token
-- Returns {stalls counted, dead-lettered past maxStalls, flow parents dead-lettered with them,
-- dead-lettered as cancelled}.
local now = tonumber(ARGV[2])
local maxStalls = tonumber(ARGV[3])
local stalls, deadLettered, cancelled = 0, 0, 0
for i = 5, #ARGV, 4 do
  local id = ARGV[i]
  if ownsLease(id, ARGV[i + 3]) and redis.call('ZREM', ACTIVE, id) == 1 then
    redis.call('HDEL', LEASES, id)
    local err = nil
    if redis.call('ZREM', CANCELLED, id) == 1 then
      err = cancelError(id, now)
      cancelled = cancelled + 1
    elseif maxStalls and redis.call('HINCRBY', P .. 'stalls', id, 1) > maxStalls then
      stalls = stalls + 1
      deadLettered = deadLettered + 1
      err = ARGV[4]
    end
    if err then
      local raw = redis.call('GET', P .. 'j:' .. id)
      local record = raw and decodeRecord(raw) or nil
      err = withAttempt(err, record)
      redis.call('HSET', P .. 'derr', id, err)
      redis.call('ZADD', DEAD, ARGV[2], id)
      if record and type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now) end
    else
      if maxStalls then stalls = stalls + 1 end
      enqueue(id, tonumber(ARGV[i + 1]), ARGV[i + 2], 0)
    end
  end
end
finish()
-- Counted only with maxStalls: the stalls counted, and the jobs of them dead-lettered; then the
-- flow parents dead-lettered with a child (policy 'fail').
return {stalls, deadLettered, #failedParents / 3, cancelled}
