-- Leaky bucket (GCRA, continuous-state form). State: a = level scaled by window, b = updated at.
-- Time until one more request than `remaining` conforms without waiting: the bucket has leaked
-- down to burst - (remaining + 1) requests (0 when it is empty; nextConformingMs).
local function lb_next(level, remaining, ahead, p)
  if level <= 0 then return 0 end
  return math.ceil((level - (p.burst - remaining - 1) * p.window) / p.limit) + ahead
end

ALG[5] = function(a, b, _, now, cost, p)
  local w = p.window
  local capacity = p.burst * w
  local queue = p.queue * p.limit
  local level = 0
  -- The bucket's time: a clock that went back leaks from where the bucket stands (bucketTime).
  local at = now
  -- A bucket further ahead than any clock step back starts afresh (isBeyondClockStep).
  if a ~= nil and not beyond_step(b, now) then
    local elapsed = math.max(0, now - b)
    level = math.max(0, a - elapsed * p.limit)
    if b > now then at = b end
  end
  local ahead = at - now
  local after = level + cost * w
  local delay = 0
  -- A cost of 0 adds nothing to the queue: it has nothing to wait for. A queued request waits for
  -- the leak from now, not the bucket's lead as well when the clock went back (leakyBucketInPlace).
  if cost > 0 and after > capacity then delay = math.ceil((after - capacity) / p.limit) end
  if after > capacity + queue then
    local retry = math.ceil((after - capacity - queue) / p.limit) + ahead
    if cost * w > capacity + queue then retry = NEVER end
    local remaining = math.max(0, math.floor((capacity - level) / w))
    return false, remaining, math.ceil(level / p.limit) + ahead, retry, 0, lb_next(level, remaining, ahead, p), a, b, nil
  end
  local remaining = math.max(0, math.floor((capacity - after) / w))
  return true, remaining, math.ceil(after / p.limit) + ahead, 0, delay, lb_next(after, remaining, ahead, p), after, at, nil
end
