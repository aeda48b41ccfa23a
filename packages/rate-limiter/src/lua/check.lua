-- One call checks a batch of groups; a group is one key with its limits and a list of costs
-- (consecutive requests of that key), each all-or-nothing over the key's limits.
-- ARGV: nGroups, autoBlock (0/1) [, violations, withinMs, blockMs, multiplier, maxBlockMs,
-- forgetAfterMs when 1], nSets, then per set of limits: nLimits and per limit (algorithm, limit,
-- windowMs, burst, queueMaxDelayMs); then per group: set index, nCosts, hasLogs (0/1), the costs.
-- Groups of one rule share its set, so limits are sent and parsed once per call.
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

local function check_group(hkey, logBase, set, nc, costs)
  local nl, policies, fields = set.nl, set.policies, set.fields
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
  local block = nil
  if blocking then
    block = {
      v = tonumber(values[base + 1]) or 0, w = tonumber(values[base + 2]) or 0,
      u = tonumber(values[base + 3]) or 0, o = tonumber(values[base + 4]) or 0,
    }
  end

  local dirty, blockDirty, logDirty = false, false, {}
  local ttl = 1
  local next_states = {}
  local expiryMoved = false
  for j = 1, nc do
    local cost = costs[j]
    local blockedMs = 0
    if blocking and block.u > now then blockedMs = block.u - now end
    local effective = cost
    if blockedMs > 0 then effective = 0 end
    -- Results go straight into `out`: blockedMs, then five values per limit.
    local base = #out
    out[base + 1] = blockedMs
    local allAllowed = blockedMs == 0
    for i = 1, nl do
      local allowed, remaining, reset, retry, delay, ns = ALG[policies[i].alg](states[i], now, effective, policies[i])
      local o = base + 2 + (i - 1) * 5
      out[o] = allowed and 1 or 0
      out[o + 1] = remaining
      out[o + 2] = reset
      out[o + 3] = retry
      out[o + 4] = delay
      next_states[i] = ns
      if not allowed then allAllowed = false end
    end
    if blockedMs > 0 then
      for i = 1, nl do
        local o = base + 2 + (i - 1) * 5
        out[o] = 0
        out[o + 3] = math.max(out[o + 3], blockedMs)
      end
    elseif allAllowed then
      for i = 1, nl do
        local alg = policies[i].alg
        -- A window's expiry moves only when a new window starts; a bucket's with every request.
        if alg == 4 or alg == 5 or states[i].a ~= next_states[i].a then expiryMoved = true end
        states[i] = next_states[i]
        if alg == 3 then logDirty[i] = true end
      end
      dirty = true
    else
      -- Refused: nothing is counted, so limits that would have admitted report their unspent state.
      for i = 1, nl do
        local o = base + 2 + (i - 1) * 5
        if out[o] == 1 then
          local _, remaining, reset, retry, delay = ALG[policies[i].alg](states[i], now, 0, policies[i])
          out[o + 1] = remaining
          out[o + 2] = reset
          out[o + 3] = retry
          out[o + 4] = delay
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
          for i = 1, nl do
            local o = base + 2 + (i - 1) * 5
            out[o + 3] = math.max(out[o + 3], length)
          end
        end
        blockDirty = true
      end
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
    if expiryMoved or blockDirty then redis.call('PEXPIRE', hkey, ttl) end
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

local sets = {}
local nsets = tonumber(ARGV[at])
at = at + 1
for set = 1, nsets do
  local nl = tonumber(ARGV[at])
  at = at + 1
  local policies, fields = {}, {}
  for i = 1, nl do
    policies[i] = {
      alg = tonumber(ARGV[at]), limit = tonumber(ARGV[at + 1]), window = tonumber(ARGV[at + 2]),
      burst = tonumber(ARGV[at + 3]), queue = tonumber(ARGV[at + 4]),
    }
    at = at + 5
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
  sets[set] = { nl = nl, policies = policies, fields = fields }
end

local keyAt = 1
for _ = 1, ngroups do
  local set, nc, logs = sets[tonumber(ARGV[at])], tonumber(ARGV[at + 1]), ARGV[at + 2] == '1'
  at = at + 3
  local costs = {}
  for j = 1, nc do costs[j] = tonumber(ARGV[at + j - 1]) end
  at = at + nc
  check_group(KEYS[keyAt], keyAt, set, nc, costs)
  keyAt = keyAt + 1
  if logs then keyAt = keyAt + set.nl end
end
return out
