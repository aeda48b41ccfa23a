-- Leaky bucket (GCRA, continuous-state form). State: a = level scaled by window, b = updated at.
ALG[5] = function(a, b, _, now, cost, p)
  local w = p.window
  local capacity = p.burst * w
  local queue = p.queue * p.limit
  local level = 0
  if a ~= nil then
    local elapsed = math.max(0, now - b)
    level = math.max(0, a - elapsed * p.limit)
  end
  local after = level + cost * w
  if after > capacity + queue then
    local retry = math.ceil((after - capacity - queue) / p.limit)
    if cost * w > capacity + queue then retry = NEVER end
    return false, math.max(0, math.floor((capacity - level) / w)), math.ceil(level / p.limit), retry, 0, a, b, nil
  end
  local delay = 0
  if after > capacity then delay = math.ceil((after - capacity) / p.limit) end
  return true, math.max(0, math.floor((capacity - after) / w)), math.ceil(after / p.limit), 0, delay, after, now, nil
end
