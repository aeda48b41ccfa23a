-- One call checks a batch of groups; a group is one key with its limits and a list of costs
-- (consecutive requests of that key), each all-or-nothing over the key's limits.
-- ARGV: nGroups, autoBlock (0/1) [, violations, withinMs, blockMs, multiplier, maxBlockMs,
-- forgetAfterMs when 1], then per group: nLimits, nCosts, hasLogs (0/1), per limit (algorithm,
-- limit, windowMs, burst, queueMaxDelayMs), then the costs.
-- KEYS: per group its state hash, then (when hasLogs) one sorted set per limit.
-- Returns per group, per cost: blockedMs, then per limit allowed, remaining, resetMs,
-- retryAfterMs, delayMs.
local ngroups = tonumber(ARGV[1])
local blocking = ARGV[2] == '1'
local bp = {}
local at = 3
if blocking then
  bp = {
    violations = tonumber(ARGV[3]), within = tonumber(ARGV[4]), ms = tonumber(ARGV[5]),
    mult = tonumber(ARGV[6]), max = tonumber(ARGV[7]), forget = tonumber(ARGV[8]),
  }
  at = 9
end

-- The server's clock: app servers' clock skew does not matter.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}

-- How long a limit's state must be kept (mirrors the TypeScript ttlMs functions).
local function state_ttl(p, st)
  if st.a == nil then return 0 end
  if p.alg == 1 then return st.a + p.window - now end
  if p.alg == 2 then return st.a + 2 * p.window - now end
  if p.alg == 4 then return math.ceil((p.burst * p.window - st.a) / p.limit) - (now - st.b) end
  if p.alg == 5 then return math.ceil(st.a / p.limit) - (now - st.b) end
  return 0
end

local function check_group(hkey, logBase, nl, nc, policies, costs)
  local fields = {}
  for i = 1, nl do
    fields[#fields + 1] = i .. ':a'
    fields[#fields + 1] = i .. ':b'
    fields[#fields + 1] = i .. ':c'
  end
  if blocking then
    fields[#fields + 1] = 'bv'
    fields[#fields + 1] = 'bw'
    fields[#fields + 1] = 'bu'
    fields[#fields + 1] = 'bo'
  end
  local values = redis.call('HMGET', hkey, unpack(fields))
  local states = {}
  for i = 1, nl do
    local p = policies[i]
    if p.alg == 3 then
      local times, tcosts = {}, {}
      local entries = redis.call('ZRANGEBYSCORE', KEYS[logBase + i], '(' .. (now - p.window), '+inf')
      for k = 1, #entries do
        local t, c = string.match(entries[k], '^(%d+):(%d+):')
        times[#times + 1] = tonumber(t)
        tcosts[#tcosts + 1] = tonumber(c)
      end
      states[i] = { times = times, costs = tcosts }
    else
      states[i] = { a = tonumber(values[3 * i - 2]), b = tonumber(values[3 * i - 1]), c = tonumber(values[3 * i]) }
    end
  end
  local base = 3 * nl
  local block = {
    v = tonumber(values[base + 1]) or 0, w = tonumber(values[base + 2]) or 0,
    u = tonumber(values[base + 3]) or 0, o = tonumber(values[base + 4]) or 0,
  }

  local dirty, blockDirty, logDirty = false, false, {}
  local ttl = 1
  for j = 1, nc do
    local cost = costs[j]
    local blockedMs = 0
    if blocking and block.u > now then blockedMs = block.u - now end
    local effective = cost
    if blockedMs > 0 then effective = 0 end
    local res = {}
    local allAllowed = blockedMs == 0
    local next_states = {}
    for i = 1, nl do
      local allowed, remaining, reset, retry, delay, ns = ALG[policies[i].alg](states[i], now, effective, policies[i])
      res[i] = { allowed, remaining, reset, retry, delay }
      next_states[i] = ns
      if not allowed then allAllowed = false end
    end
    if blockedMs > 0 then
      for i = 1, nl do
        res[i][1] = false
        res[i][4] = math.max(res[i][4], blockedMs)
      end
    elseif allAllowed then
      for i = 1, nl do
        states[i] = next_states[i]
        if policies[i].alg == 3 then logDirty[i] = true end
      end
      dirty = true
    else
      -- Refused: nothing is counted, so limits that would have admitted report their unspent state.
      for i = 1, nl do
        if res[i][1] then
          local allowed, remaining, reset, retry, delay = ALG[policies[i].alg](states[i], now, 0, policies[i])
          res[i] = { allowed, remaining, reset, retry, delay }
        end
      end
      if blocking then
        if now - block.w >= bp.within then
          block.v = 0
          block.w = now
        end
        block.v = block.v + 1
        if block.v >= bp.violations then
          local offences = block.o
          if now - block.u >= bp.forget then offences = 0 end
          offences = offences + 1
          local length = math.min(bp.max, math.floor(bp.ms * bp.mult ^ (offences - 1) + 0.5))
          block = { v = 0, w = now, u = now + length, o = offences }
          for i = 1, nl do res[i][4] = math.max(res[i][4], length) end
        end
        blockDirty = true
      end
    end
    out[#out + 1] = blockedMs
    for i = 1, nl do
      local r = res[i]
      out[#out + 1] = r[1] and 1 or 0
      out[#out + 1] = r[2]
      out[#out + 1] = r[3]
      out[#out + 1] = r[4]
      out[#out + 1] = r[5]
    end
  end

  if dirty or blockDirty then
    local writes = {}
    if dirty then
      for i = 1, nl do
        local s = states[i]
        if policies[i].alg ~= 3 and s.a ~= nil then
          writes[#writes + 1] = i .. ':a'
          writes[#writes + 1] = s.a
          writes[#writes + 1] = i .. ':b'
          writes[#writes + 1] = s.b
          if s.c ~= nil then
            writes[#writes + 1] = i .. ':c'
            writes[#writes + 1] = s.c
          end
        end
      end
    end
    if blockDirty then
      for _, name in ipairs({ 'v', 'w', 'u', 'o' }) do
        writes[#writes + 1] = 'b' .. name
        writes[#writes + 1] = block[name]
      end
    end
    -- The hash lives as long as its longest-lived state (every limit's, and the block's).
    for i = 1, nl do ttl = math.max(ttl, state_ttl(policies[i], states[i])) end
    if blocking and (block.u > 0 or block.w > 0) then
      ttl = math.max(ttl, block.u + bp.forget - now, block.w + bp.within - now)
    end
    if #writes > 0 then redis.call('HSET', hkey, unpack(writes)) end
    redis.call('PEXPIRE', hkey, ttl)
    for i, _ in pairs(logDirty) do
      local s = states[i]
      local lkey = KEYS[logBase + i]
      redis.call('DEL', lkey)
      if #s.times > 0 then
        local members = {}
        for k = 1, #s.times do
          members[#members + 1] = s.times[k]
          members[#members + 1] = s.times[k] .. ':' .. s.costs[k] .. ':' .. k
        end
        redis.call('ZADD', lkey, unpack(members))
        redis.call('PEXPIRE', lkey, policies[i].window)
      end
    end
  end
end

local keyAt = 1
for _ = 1, ngroups do
  local nl, nc, logs = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), ARGV[at + 2] == '1'
  at = at + 3
  local policies = {}
  for i = 1, nl do
    policies[i] = {
      alg = tonumber(ARGV[at]), limit = tonumber(ARGV[at + 1]), window = tonumber(ARGV[at + 2]),
      burst = tonumber(ARGV[at + 3]), queue = tonumber(ARGV[at + 4]),
    }
    at = at + 5
  end
  local costs = {}
  for j = 1, nc do costs[j] = tonumber(ARGV[at + j - 1]) end
  at = at + nc
  check_group(KEYS[keyAt], keyAt, nl, nc, policies, costs)
  keyAt = keyAt + 1
  if logs then keyAt = keyAt + nl end
end
return out
