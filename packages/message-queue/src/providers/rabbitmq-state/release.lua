-- Puts leased jobs back to queued (graceful close); their message is requeued as it is (and
-- dropped at delivery for a job cancelled while active, which is dead-lettered as cancelled).
-- A job active under another message than the caller's (recovered, and run by another worker)
-- is left alone. With maxStalls (not ''), the tries ran past their leases (the worker stalled):
-- each counts a stall, as lease recovery does, and a job past maxStalls is dead-lettered with
-- the stall error (its requeued message is then dropped at delivery) instead of queued again.
-- ARGV: prefix, now, maxStalls or '', stall error JSON or '', then id and message token ('' =
-- unknown) per job.
local now = tonumber(ARGV[2])
local maxStalls = tonumber(ARGV[3])
local stalls, deadLettered, cancelled = 0, 0, 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local key = jobKey(id)
  local job = redis.call('HMGET', key, 's', 't', 'l')
  if job[1] == 'a' and (ARGV[i + 1] == '' or ARGV[i + 1] == leaseOf(job[2], job[3])) then
    local err = nil
    if redis.call('ZSCORE', CANCELLED, id) then
      err = cancelError(id, now)
      cancelled = cancelled + 1
    elseif maxStalls then
      stalls = stalls + 1
      if redis.call('HINCRBY', key, 'st', 1) > maxStalls then
        err = ARGV[4]
        deadLettered = deadLettered + 1
      end
    end
    if err then
      local record = decodeRecord(redis.call('HGET', key, 'r'))
      err = withAttempt(err, record)
      redis.call('HSET', key, 'e', err, 'f', ARGV[2])
      move(id, 'a', 'f', now)
      -- A flow parent this releases is published by the next maintain pass (outbox deadline: now).
      if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now, now) end
    else
      move(id, 'a', 'q', now)
    end
  end
end
-- Counted only with maxStalls: the stalls counted, and the jobs of them dead-lettered, then the
-- flow parents dead-lettered with them. (A flow
-- parent this releases is published by maintain, from the outbox: see above.)
return {stalls, deadLettered, #failedParents / 3, cancelled}
