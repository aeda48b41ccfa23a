-- Adjusts one key's state outside a check: peek, refund, penalize, block or unblock. Runs after
-- prelude.lua and the algorithm files (ALG); every adjustment mirrors its TypeScript twin in
-- src/algorithms/*-adjust.ts and src/stores/memory-store.ts (adjust).
-- ARGV: expiresAt (Redis ms, 0 = none), operation ('peek', 'refund', 'penalize', 'block',
-- 'unblock'), amount (points, or the block's ms), autoBlock (0/1; unused: checks honour blocks
-- either way), forgetAfterMs, nLimits, then
-- per limit (algorithm, limit, windowMs, burst, queueMaxDelayMs or the window's offset).
-- KEYS: the state hash, then one sorted set per limit (used by sliding logs only).
-- Returns now, then 0 when the call expired (nothing read or changed; nothing else follows) or
-- 1, blockedMs, then per limit what a cost-0 check reports: allowed, remaining, resetMs,
-- retryAfterMs, delayMs, nextMs. Nothing is counted and no violation is recorded.

-- One call of this script (see prelude.lua: `begin`, and how scripts are run).
local function entry(keys, args)
  if begin(keys, args) then return { now, 0 } end
  local op = ARGV[2]
  local amount = tonumber(ARGV[3])
  local forget = tonumber(ARGV[5])
  local nl = tonumber(ARGV[6])
  local hkey = KEYS[1]

  local policies, fields, offsets = {}, {}, {}
  local at = 7
  for i = 1, nl do
    local p = read_policy(at)
    policies[i] = p
    at = at + 5
    offsets[i] = #fields
    for f = 1, FIELDS[p.alg] do fields[#fields + 1] = i .. ':' .. NAMES[f] end
  end
  local blockAt = #fields
  fields[#fields + 1] = 'bv'
  fields[#fields + 1] = 'bw'
  fields[#fields + 1] = 'bu'
  fields[#fields + 1] = 'bo'
  fields[#fields + 1] = 'bp'
  fields[#fields + 1] = 'bs'
  local values = redis.call('HMGET', hkey, unpack(fields))

  -- Per limit: a, b, c (scalar algorithms) or a log { times, costs } (in-window entries only).
  local SA, SB, SC, LOG = {}, {}, {}, {}
  for i = 1, nl do
    local p = policies[i]
    if p.alg == 3 then
      LOG[i] = read_log(KEYS[1 + i], p.window)
    else
      local o = offsets[i]
      SA[i] = tonumber(values[o + 1])
      SB[i] = tonumber(values[o + 2])
      if FIELDS[p.alg] == 3 then SC[i] = tonumber(values[o + 3]) end
    end
  end
  local block = {
    v = tonumber(values[blockAt + 1]) or 0, w = tonumber(values[blockAt + 2]) or 0,
    u = tonumber(values[blockAt + 3]) or 0, o = tonumber(values[blockAt + 4]) or 0,
  }
  block.p = read_earlier(values[blockAt + 5], block.v, block.w)
  block.s = tonumber(values[blockAt + 6])
  -- A block recorded by a clock that was ahead lasts its own length from now (bounded_block).
  if block.u > now then
    local nu, ns = bounded_block(block.u, block.s, now)
    if nu ~= nil then
      block.u, block.s = nu, ns
      redis.call('HSET', hkey, 'bu', nu, 'bs', ns)
    end
  end

  -- Refund and penalty per algorithm: function(a, b, c, now, points, p) -> new a, b, c (the log's:
  -- function(log, now, points, p) -> new log). nil state = a key never seen. The windows count at
  -- now - p.off, as their checks do (read_policy).
  local REFUND, PENALIZE = {}, {}
  -- The window a change at `now` counts in: the state's when it is later (countingWindowStart).
  local function counting_ws(a, now, w)
    local ws = now - (now % w)
    if a ~= nil and a > ws and not beyond_step(a, now) then return a end
    return ws
  end
  -- The bucket's time: never moved back by a clock that went back (bucketTime).
  local function bucket_time(b, now)
    if b ~= nil and b > now and not beyond_step(b, now) then return b end
    return now
  end
  REFUND[1] = function(a, b, c, now, points, p)
    now = now - p.off
    if a == nil or a ~= counting_ws(a, now, p.window) then return a, b, c end
    return a, math.max(0, b - points), nil
  end
  PENALIZE[1] = function(a, b, _, now, points, p)
    now = now - p.off
    local ws = counting_ws(a, now, p.window)
    local count = 0
    if a == ws then count = b or 0 end
    return ws, math.max(count, math.min(p.limit, count + points)), nil
  end
  REFUND[2] = function(a, b, c, now, points, p)
    now = now - p.off
    if a == nil or a ~= counting_ws(a, now, p.window) then return a, b, c end
    return a, math.max(0, b - points), c
  end
  PENALIZE[2] = function(a, b, c, now, points, p)
    now = now - p.off
    local w = p.window
    local ws = counting_ws(a, now, w)
    local prev, cur = 0, 0
    if a == ws then
      prev = c or 0
      cur = b or 0
    elseif a == ws - w then
      prev = b or 0
    end
    local ceiling = p.limit - math.ceil(prev * (w - math.max(0, now - ws)) / w)
    return ws, math.max(cur, math.min(cur + points, ceiling)), prev
  end
  local function tokens_at(a, b, now, p)
    local full = p.burst * p.window
    if a == nil or beyond_step(b, now) then return full end
    return math.min(full, a + math.max(0, now - b) * p.limit)
  end
  REFUND[4] = function(a, b, c, now, points, p)
    if a == nil then return a, b, c end
    return math.min(p.burst * p.window, tokens_at(a, b, now, p) + points * p.window), bucket_time(b, now), nil
  end
  PENALIZE[4] = function(a, b, _, now, points, p)
    return math.max(0, tokens_at(a, b, now, p) - points * p.window), bucket_time(b, now), nil
  end
  local function level_at(a, b, now, p)
    if a == nil or beyond_step(b, now) then return 0 end
    return math.max(0, a - math.max(0, now - b) * p.limit)
  end
  REFUND[5] = function(a, b, c, now, points, p)
    if a == nil then return a, b, c end
    return math.max(0, level_at(a, b, now, p) - points * p.window), bucket_time(b, now), nil
  end
  PENALIZE[5] = function(a, b, _, now, points, p)
    local level = level_at(a, b, now, p)
    return math.max(level, math.min(p.burst * p.window, level + points * p.window)), bucket_time(b, now), nil
  end
  -- The log holds in-window entries only (as read), so a refund takes from them, newest first.
  REFUND[3] = function(log, _, points, _)
    local times, costs = log.times, log.costs
    local left = points
    while left > 0 and #costs > 0 do
      local last = #costs
      if costs[last] <= left then
        left = left - costs[last]
        costs[last] = nil
        times[last] = nil
      else
        costs[last] = costs[last] - left
        left = 0
      end
    end
    return log
  end
  PENALIZE[3] = function(log, now, points, p)
    local used = 0
    for k = 1, #log.costs do used = used + log.costs[k] end
    local added = math.min(points, p.limit - used)
    if added > 0 then
      -- At the newest entry's time when the clock went back (logAtLatest).
      local at = now
      if #log.times > 0 and log.times[#log.times] > at then at = log.times[#log.times] end
      log.times[#log.times + 1] = at
      log.costs[#log.costs + 1] = added
    end
    return log
  end


  if op == 'refund' or op == 'penalize' then
    local fn = REFUND
    if op == 'penalize' then fn = PENALIZE end
    local W, n, ttl = {}, 0, 0
    for i = 1, nl do
      local p = policies[i]
      if p.alg == 3 then
        write_log(KEYS[1 + i], fn[3](LOG[i], now, amount, p), p.window)
      else
        local a, b, c = fn[p.alg](SA[i], SB[i], SC[i], now, amount, p)
        SA[i], SB[i], SC[i] = a, b, c
        if a ~= nil then
          local o = offsets[i]
          W[n + 1], W[n + 2], W[n + 3], W[n + 4] = fields[o + 1], string.format('%d', a), fields[o + 2],
            string.format('%d', b)
          n = n + 4
          if FIELDS[p.alg] == 3 then
            W[n + 1], W[n + 2] = fields[o + 3], string.format('%d', c)
            n = n + 2
          end
          ttl = math.max(ttl, state_ttl(p, a, b))
        end
      end
    end
    if n > 0 then
      -- A block in the same hash may need it longer: the expiry never shortens here.
      ttl = math.max(1, ttl, redis.call('PTTL', hkey))
      redis.call('HSET', hkey, unpack(W, 1, n))
      redis.call('PEXPIRE', hkey, ttl)
    end
  elseif op == 'block' or op == 'unblock' then
    if op == 'block' then
      block.u = now + amount
      block.s = now
    else
      -- The block ends now; its offences stay, so a repeat offence still grows the next block
      -- and forgetAfterMs counts from now (memory-store.ts does the same).
      block.u = math.min(block.u, now)
      block.v = 0
      block.p = ''
    end
    local ttl = math.max(1, redis.call('PTTL', hkey), block.u + forget - now)
    redis.call('HSET', hkey, 'bv', block.v, 'bw', block.w, 'bu', block.u, 'bo', block.o, 'bp', stamped_earlier(block))
    if block.s ~= nil then redis.call('HSET', hkey, 'bs', block.s) end
    redis.call('PEXPIRE', hkey, ttl)
  end

  local blockedMs = 0
  -- A block is honoured by checks with or without auto-block, so peeks report it too.
  if block.u > now then blockedMs = block.u - now end
  local out = { now, 1, blockedMs }
  for i = 1, nl do
    local p = policies[i]
    local allowed, remaining, reset, retry, delay, nxt = report(p, SA[i], SB[i], SC[i], LOG[i])
    if blockedMs > 0 then
      allowed = false
      retry = math.max(retry, blockedMs)
    end
    out[#out + 1] = allowed and 1 or 0
    out[#out + 1] = remaining
    out[#out + 1] = reset
    out[#out + 1] = retry
    out[#out + 1] = delay
    out[#out + 1] = nxt
  end
  return out
end
