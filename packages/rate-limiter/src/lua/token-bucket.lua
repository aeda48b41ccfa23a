-- Token bucket. State: a = tokens scaled by window, b = updated at.
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
    return false, math.floor(tokens / w), math.ceil((full - tokens) / p.limit) + ahead, retry, 0, a, b, nil
  end
  local left = tokens - needed
  return true, math.floor(left / w), math.ceil((full - left) / p.limit) + ahead, 0, 0, left, at, nil
end
