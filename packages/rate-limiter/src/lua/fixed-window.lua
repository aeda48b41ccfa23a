-- Fixed window. State: a = window start, b = points used in it.
-- Counted at now - p.off: its windows start at k * window + off (read_policy).
ALG[1] = function(a, b, _, now, cost, p)
  now = now - p.off
  local ws = now - (now % p.window)
  -- A clock that went back counts in the state's later window (countingWindowStart).
  -- Not one further ahead than any clock step back (isBeyondClockStep).
  if a ~= nil and a > ws and not beyond_step(a, now) then ws = a end
  local count = 0
  if a == ws then count = b or 0 end
  local reset = ws + p.window - now
  if count + cost > p.limit then
    local shown = reset
    if count == 0 then shown = 0 end
    local retry = reset
    if cost > p.limit then retry = NEVER end
    -- The whole quota comes back at the window's end: the next point with it (nextMs).
    return false, math.max(0, p.limit - count), shown, retry, 0, shown, a, b, nil
  end
  local used = count + cost
  local shown = reset
  if used == 0 then shown = 0 end
  return true, p.limit - used, shown, 0, 0, shown, ws, used, nil
end
