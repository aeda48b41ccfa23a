-- Token bucket. State: a = tokens scaled by window, b = updated at.
ALG[4] = function(st, now, cost, p)
  local w = p.window
  local capacity = p.burst
  local full = capacity * w
  local tokens = full
  if st.a ~= nil then
    local elapsed = math.max(0, now - st.b)
    tokens = math.min(full, st.a + elapsed * p.limit)
  end
  local needed = cost * w
  if needed > tokens then
    local retry = math.ceil((needed - tokens) / p.limit)
    if needed > full then retry = math.ceil((full - tokens) / p.limit) end
    return false, math.floor(tokens / w), math.ceil((full - tokens) / p.limit), retry, 0, nil, 0
  end
  local left = tokens - needed
  local reset = math.ceil((full - left) / p.limit)
  return true, math.floor(left / w), reset, 0, 0, { a = left, b = now }, reset
end
