-- Token bucket. State: a = tokens scaled by window, b = updated at.
ALG[4] = function(a, b, _, now, cost, p)
  local w = p.window
  local capacity = p.burst
  local full = capacity * w
  local tokens = full
  if a ~= nil then
    local elapsed = math.max(0, now - b)
    tokens = math.min(full, a + elapsed * p.limit)
  end
  local needed = cost * w
  if needed > tokens then
    local retry = math.ceil((needed - tokens) / p.limit)
    if needed > full then retry = NEVER end
    return false, math.floor(tokens / w), math.ceil((full - tokens) / p.limit), retry, 0, a, b, nil
  end
  local left = tokens - needed
  return true, math.floor(left / w), math.ceil((full - left) / p.limit), 0, 0, left, now, nil
end
