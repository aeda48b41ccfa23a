-- Exact sliding log. State: times/costs arrays (oldest first), kept in a sorted set.
local function log_reset(times, now, w)
  local n = #times
  if n == 0 then return 0 end
  return times[n] + w - now
end

-- When the oldest entry leaves the window, giving its points back (0 when there are none).
local function log_next(times, now, w)
  if #times == 0 then return 0 end
  return times[1] + w - now
end

ALG[3] = function(st, now, cost, p)
  local w = p.window
  local kt, kc = {}, {}
  local used = 0
  -- A log whose newest entry is further ahead than any clock step back starts afresh (firstInWindow).
  local n = #st.times
  if n > 0 and beyond_step(st.times[n], now) then n = 0 end
  for k = 1, n do
    if st.times[k] > now - w then
      kt[#kt + 1] = st.times[k]
      kc[#kc + 1] = st.costs[k]
      used = used + st.costs[k]
    end
  end
  if used + cost > p.limit then
    local retry = NEVER
    if cost <= p.limit then
      retry = log_reset(kt, now, w)
      local freed = 0
      for k = 1, #kt do
        freed = freed + kc[k]
        if used - freed + cost <= p.limit then
          retry = kt[k] + w - now
          break
        end
      end
    end
    return false, math.max(0, p.limit - used), log_reset(kt, now, w), retry, 0, log_next(kt, now, w), st
  end
  -- A cost-0 check logs nothing and returns the log it was given: check.lua writes a log only when
  -- the step returns a new one, so the entries outside this check's window stay for a request whose
  -- clock went back to before it (slidingLogInPlace).
  if cost == 0 then return true, p.limit - used, log_reset(kt, now, w), 0, 0, log_next(kt, now, w), st end
  -- At the newest entry's time when the clock went back (logAtLatest).
  local at = now
  if #kt > 0 and kt[#kt] > at then at = kt[#kt] end
  kt[#kt + 1] = at
  kc[#kc + 1] = cost
  return true, p.limit - used - cost, log_reset(kt, now, w), 0, 0, log_next(kt, now, w), { times = kt, costs = kc }
end
