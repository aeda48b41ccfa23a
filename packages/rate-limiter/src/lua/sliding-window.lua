-- Sliding window (weighted two-window counter). State: a = window start, b = current, c = previous.
local function sw_reset(ws, w, now, prev, cur)
  if cur > 0 then return ws + 2 * w - now end
  if prev > 0 then return ws + w - now end
  return 0
end

-- One less when the step's own comparison would still refuse at `slack` (fittingSlack).
local function sw_fitting(slack, count, room)
  if count * slack > room then return slack - 1 end
  return slack
end

local function sw_retry(ws, w, now, prev, cur, cost, limit)
  if cost > limit then return NEVER end
  -- Without a previous count nothing frees within this window (retryOf).
  if cur + cost <= limit and prev > 0 then
    local room = (limit - cur - cost) * w
    return ws + w - sw_fitting(math.floor(room / prev), prev, room) - now
  end
  local room = (limit - cost) * w
  local slack = w
  if cur > 0 then slack = sw_fitting(math.min(w, math.floor(room / cur)), cur, room) end
  return ws + 2 * w - slack - now
end

-- When the weighted count next frees a point: remaining + 1 fit (0 with the whole limit left).
local function sw_next(ws, w, now, prev, cur, remaining, limit)
  if remaining >= limit then return 0 end
  return sw_retry(ws, w, now, prev, cur, remaining + 1, limit)
end

-- Counted at now - p.off: its windows start at k * window + off (read_policy).
ALG[2] = function(a, b, c, now, cost, p)
  now = now - p.off
  local w = p.window
  local ws = now - (now % w)
  -- A clock that went back counts in the state's later window (countingWindowStart).
  -- Not one further ahead than any clock step back (isBeyondClockStep).
  if a ~= nil and a > ws and not beyond_step(a, now) then ws = a end
  local prev, cur = 0, 0
  if a ~= nil then
    if a == ws then
      prev = c or 0
      cur = b or 0
    elseif a == ws - w then
      prev = b or 0
    end
  end
  local pw = prev * (w - math.max(0, now - ws))
  -- pw <= (limit - cur - cost) * w, not a sum against limit * w, which is rounded past 2^53
  -- (previousPointsOf): with no previous count the decision and remaining stay exact.
  if pw > (p.limit - cur - cost) * w then
    local remaining = math.max(0, p.limit - cur - math.ceil(pw / w))
    return false, remaining, sw_reset(ws, w, now, prev, cur), sw_retry(ws, w, now, prev, cur, cost, p.limit), 0,
      sw_next(ws, w, now, prev, cur, remaining, p.limit), a, b, c
  end
  local used = cur + cost
  local remaining = math.max(0, p.limit - used - math.ceil(pw / w))
  return true, remaining, sw_reset(ws, w, now, prev, used), 0, 0, sw_next(ws, w, now, prev, used, remaining, p.limit),
    ws, used, prev
end
