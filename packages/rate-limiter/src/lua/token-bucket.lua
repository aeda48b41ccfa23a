-- Token bucket. State: a = tokens scaled by window, b = updated at.
-- Time until the next whole token: remaining + 1 in the bucket (0 when it is full); refill
-- starts at the bucket's time, `ahead` of now when the clock went back (nextTokenMs).
local function tb_next(tokens, remaining, ahead, p)
  if remaining >= p.burst then return 0 end
  return math.ceil(((remaining + 1) * p.window - tokens) / p.limit) + ahead
end

ALG[4] = function(a, b, _, now, cost, p)
  local w = p.window
  local capacity = p.burst
  local full = capacity * w
  local tokens = full
  -- The bucket's time: a clock that went back refills from where the bucket stands (bucketTime).
  local at = now
  -- A bucket further ahead than any clock step back starts afresh (isBeyondClockStep).
  if a ~= nil and not beyond_step(b, now) then
    local elapsed = math.max(0, now - b)
    tokens = math.min(full, a + elapsed * p.limit)
    if b > now then at = b end
  end
  local ahead = at - now
  local needed = cost * w
  if needed > tokens then
    local retry = math.ceil((needed - tokens) / p.limit) + ahead
    if needed > full then retry = NEVER end
    local remaining = math.floor(tokens / w)
    return false, remaining, math.ceil((full - tokens) / p.limit) + ahead, retry, 0, tb_next(tokens, remaining, ahead, p),
      a, b, nil
  end
  local left = tokens - needed
  local remaining = math.floor(left / w)
  return true, remaining, math.ceil((full - left) / p.limit) + ahead, 0, 0, tb_next(left, remaining, ahead, p),
    left, at, nil
end
