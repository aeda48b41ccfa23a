-- Leaky bucket (GCRA, continuous-state form). State: a = level scaled by window, b = updated at.
ALG[5] = function(st, now, cost, p)
  local w = p.window
  local capacity = p.burst * w
  local queue = p.queue * p.limit
  local level = 0
  if st.a ~= nil then
    local elapsed = math.max(0, now - st.b)
    level = math.max(0, st.a - elapsed * p.limit)
  end
  local after = level + cost * w
  if after > capacity + queue then
    local retry = math.ceil((after - capacity - queue) / p.limit)
    if cost * w > capacity + queue then retry = math.ceil(level / p.limit) end
    return false, math.max(0, math.floor((capacity - level) / w)), math.ceil(level / p.limit), retry, 0, nil, 0
  end
  local delay = 0
  if after > capacity then delay = math.ceil((after - capacity) / p.limit) end
  local reset = math.ceil(after / p.limit)
  return true, math.max(0, math.floor((capacity - after) / w)), reset, 0, delay, { a = after, b = now }, reset
end
