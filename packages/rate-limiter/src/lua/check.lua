-- One call checks a batch of groups; a group is one key with its limits and a list of costs
-- (consecutive requests of that key), each all-or-nothing over the key's limits.
-- ARGV (the batch form; one key with one cost over one scalar limit and no auto-block has a short
-- form, see `entry`): expiresAt (Redis ms, 0 = none), nGroups, autoBlock (0/1) [, violations, withinMs,
-- blockMs, multiplier, maxBlockMs, forgetAfterMs when 1], nSets, then per set of limits: nLimits
-- and per limit (algorithm, limit, windowMs, burst, queueMaxDelayMs or the window's offset); then oneCostEach (0/1) and
-- per group: set index, nCosts (only when oneCostEach is 0), the costs.
-- Groups of one rule share its set, so limits are sent and parsed once per call; most calls carry
-- one cost per key, and then two values per key (every value sent costs Redis some parsing).
-- KEYS: per group its state hash, then (when its set has a sliding log) one sorted set per limit.
-- Returns now (Redis ms, for the client's clock offset), then 0 when the call expired (nothing
-- was read or counted; nothing else follows) or 1 followed by, per group, per cost: blockedMs,
-- then per limit allowed, remaining, resetMs, retryAfterMs, delayMs, nextMs (R, below). A call that
-- ran replies these numbers as one string, separated by spaces (the short form's reason, in
-- `entry`, holds for a batch: its reply carries 7 numbers per key); an expired one, the array.

-- Per call (set by `entry`): the batch's shape and auto-block policy, the reply being built and its
-- length, the number cache and the per-group scratch. Declared here, before the functions that
-- share them, and assigned at each call: loaded as a Redis function, this file's definitions run
-- once, not at every call (see lua-script.ts).
local ngroups, blocking, bp, out, nout, format, NUMBERS, TEXT
-- Values per limit in the reply (replyValuesPerLimit in lua-script.ts).
local R = 6
-- Per-group scratch of check_group, reused: groups are checked one after the other.
local SA, SB, SC, LOG, NA, NB, NC, NLOG, W

-- check_single's results at `o` of `out`: numbers for the short form (one string.format makes its
-- reply), texts for a batch (TEXT; see TEXT_OF), so that most need no string.format of their own.
local function put_single(o, blocked, allowed, remaining, reset, retry, delay, nxt)
  if TEXT == nil then
    out[o + 1] = blocked
    out[o + 2] = allowed and 1 or 0
    out[o + 3] = remaining
    out[o + 4] = reset
    out[o + 5] = retry
    out[o + 6] = delay
    out[o + 7] = nxt
    return
  end
  out[o + 1] = blocked == 0 and '0' or TEXT[blocked]
  out[o + 2] = allowed and '1' or '0'
  out[o + 3] = TEXT[remaining]
  out[o + 4] = TEXT[reset]
  out[o + 5] = retry == 0 and '0' or TEXT[retry]
  out[o + 6] = delay == 0 and '0' or TEXT[delay]
  out[o + 7] = TEXT[nxt]
end

-- check_group for one cost over one scalar limit without auto-block (a manual block included):
-- the same step, the same
-- reply and the same stored state, without the per-group tables. Writes only the fields that
-- changed: a window's start and expiry move only when a new window begins. Numbers are sent
-- to Redis as '%d' strings: redis.call formats a number with '%.17g', which costs twice as
-- much (the state is integers; see the prelude).
-- tonumber parses with strtod; a window's start, the counts and the costs repeat across the keys
-- of a batch, and a cached number is a table read. (A bucket's state differs per key: not
-- cached.) Made by the batch path only: for a call of one key, the cache costs more than it saves.
local function check_single(hkey, set, cost)
  local p, alg = set.first, set.alg
  local values, a, b, c, bu
  -- A manual block ('bu', its end) is read with the state, in the same HMGET: a block costs
  -- the keys that have none one more field name, not one more call.
  if alg == 2 then
    values = redis.call('HMGET', hkey, '1:a', '1:b', '1:c', 'bu')
    bu = values[4]
  else
    values = redis.call('HMGET', hkey, '1:a', '1:b', 'bu')
    bu = values[3]
  end
  if alg <= 2 and NUMBERS ~= nil then
    a, b = NUMBERS[values[1]], NUMBERS[values[2]]
    if alg == 2 then c = NUMBERS[values[3]] end
  else
    a, b = tonumber(values[1]), tonumber(values[2])
    if alg == 2 then c = tonumber(values[3]) end
  end
  local o = nout
  nout = o + 1 + R
  if bu then
    bu = tonumber(bu)
    if bu > now then
      -- Read only for a blocked key: the others pay no field for it.
      local nu, ns = bounded_block(bu, tonumber(redis.call('HGET', hkey, 'bs')), now)
      if nu ~= nil then
        bu = nu
        redis.call('HSET', hkey, 'bu', format('%d', nu), 'bs', format('%d', ns))
      end
      -- Blocked: counted nowhere, refused until the later of the block's end and the limit's own
      -- retry time for this cost (when the request would really be admitted, as the refusal that
      -- started the block says); a limit that would admit it reports its unspent state.
      local fits, remaining, reset, retry, delay, nxt = set.step(a, b, c, now, cost, p)
      if fits then remaining, reset, retry, delay, nxt = select(2, set.step(a, b, c, now, 0, p)) end
      put_single(o, bu - now, false, remaining, reset, later(retry, bu - now), delay, nxt)
      return
    end
  end
  local allowed, remaining, reset, retry, delay, nxt, na, nb, ncv = set.step(a, b, c, now, cost, p)
  -- put_single's two forms, inline: this is every key's path.
  if TEXT == nil then
    out[o + 1] = 0
    out[o + 2] = allowed and 1 or 0
    out[o + 3] = remaining
    out[o + 4] = reset
    out[o + 5] = retry
    out[o + 6] = delay
    out[o + 7] = nxt
  else
    out[o + 1] = '0'
    out[o + 2] = allowed and '1' or '0'
    out[o + 3] = TEXT[remaining]
    out[o + 4] = TEXT[reset]
    out[o + 5] = retry == 0 and '0' or TEXT[retry]
    out[o + 6] = delay == 0 and '0' or TEXT[delay]
    out[o + 7] = TEXT[nxt]
  end
  if not allowed then return end
  if na == a and alg <= 2 then
    if nb ~= b then redis.call('HSET', hkey, '1:b', format('%d', nb)) end
    return
  end
  if alg == 2 then
    redis.call('HSET', hkey, '1:a', format('%d', na), '1:b', format('%d', nb), '1:c', format('%d', ncv))
  else
    redis.call('HSET', hkey, '1:a', format('%d', na), '1:b', format('%d', nb))
  end
  redis.call('PEXPIRE', hkey, format('%d', math.max(1, state_ttl(p, na, nb))))
end

-- Nothing was counted for the request whose results start at `base`: its limits that would have
-- admitted it report their unspent state instead of the step's.
local function report_unspent(base, nl, policies)
  for i = 1, nl do
    local o = base + 2 + (i - 1) * R
    if out[o] == 1 then
      local _, remaining, reset, retry, delay, nxt = report(policies[i], SA[i], SB[i], SC[i], LOG[i])
      out[o + 1] = remaining
      out[o + 2] = reset
      out[o + 3] = retry
      out[o + 4] = delay
      out[o + 5] = nxt
    end
  end
end

-- check_group is made on the first call that needs it (`define_check_group`): a script run by
-- EVAL re-runs every definition at each call, and most calls (one key, one limit) never need
-- this one, the largest; a Redis function makes it once.
local check_group
local function define_check_group()
  check_group = function(hkey, logBase, set, nc, costAt)
    local nl, policies = set.nl, set.policies
    local values = redis.call('HMGET', hkey, unpack(set.fields))
    for i = 1, nl do
      local p = policies[i]
      if p.alg == 3 then
        LOG[i] = read_log(KEYS[logBase + i], p.window)
      else
        local offset = set.offsets[i]
        SA[i] = tonumber(values[offset + 1])
        SB[i] = tonumber(values[offset + 2])
        if FIELDS[p.alg] == 3 then SC[i] = tonumber(values[offset + 3]) else SC[i] = nil end
      end
    end
    local block = nil
    -- Without auto-block only a manual block's end is read (and nothing is recorded).
    local blockedUntil = 0
    if blocking then
      local base = set.blockOffset
      block = {
        v = tonumber(values[base + 1]) or 0, w = tonumber(values[base + 2]) or 0,
        u = tonumber(values[base + 3]) or 0, o = tonumber(values[base + 4]) or 0,
      }
      block.p = read_earlier(values[base + 5], block.v, block.w)
      block.s = tonumber(values[base + 6])
    else
      blockedUntil = tonumber(values[set.blockOffset + 1]) or 0
    end

    local dirty, blockDirty, expiryMoved = false, false, false
    -- A block recorded by a clock that was ahead lasts its own length from now (bounded_block).
    if blocking then
      if block.u > now then
        local nu, ns = bounded_block(block.u, block.s, now)
        if nu ~= nil then
          block.u, block.s = nu, ns
          blockDirty = true
        end
      end
    elseif blockedUntil > now then
      local nu, ns = bounded_block(blockedUntil, tonumber(values[set.blockOffset + 2]), now)
      if nu ~= nil then
        blockedUntil = nu
        redis.call('HSET', hkey, 'bu', nu, 'bs', ns)
      end
    end
    local logDirty = nil
    local first = nout + 1
    for j = 1, nc do
      local cost = tonumber(ARGV[costAt + j - 1])
      local blockedMs = 0
      if blocking then blockedUntil = block.u end
      if blockedUntil > now then blockedMs = blockedUntil - now end
      -- Results go straight into `out`: blockedMs, then R values per limit.
      local base = nout
      nout = base + 1 + nl * R
      out[base + 1] = blockedMs
      local allAllowed = blockedMs == 0
      -- Blocked, the cost is stepped all the same (and counted nowhere): the limits' retry times
      -- for it say when the request would really be admitted, which may be after the block.
      for i = 1, nl do
        local p = policies[i]
        local allowed, remaining, reset, retry, delay, nxt, na, nb, ncv
        if p.alg == 3 then
          allowed, remaining, reset, retry, delay, nxt, na = ALG[3](LOG[i], now, cost, p)
        else
          allowed, remaining, reset, retry, delay, nxt, na, nb, ncv = ALG[p.alg](SA[i], SB[i], SC[i], now, cost, p)
        end
        local o = base + 2 + (i - 1) * R
        out[o] = allowed and 1 or 0
        out[o + 1] = remaining
        out[o + 2] = reset
        out[o + 3] = retry
        out[o + 4] = delay
        out[o + 5] = nxt
        if p.alg == 3 then NLOG[i] = na else
          NA[i] = na
          NB[i] = nb
          NC[i] = ncv
        end
        if not allowed then allAllowed = false end
      end
      if blockedMs > 0 then
        -- As a refusal answers (and the one that started the block, memory-store.ts alike): limits
        -- that would admit the request report their unspent state, every limit refuses until the
        -- later of the block's end and its own retry time.
        report_unspent(base, nl, policies)
        for i = 1, nl do
          local o = base + 2 + (i - 1) * R
          out[o] = 0
          out[o + 3] = later(out[o + 3], blockedMs)
        end
      elseif allAllowed then
        for i = 1, nl do
          local alg = policies[i].alg
          if alg == 3 then
            -- A cost-0 step returns the log it was given: nothing to write (ALG[3]).
            if NLOG[i] ~= LOG[i] then
              LOG[i] = NLOG[i]
              logDirty = logDirty or {}
              logDirty[i] = true
            end
          else
            -- A window's expiry moves only when a new window starts; a bucket's with every request.
            if alg == 4 or alg == 5 or SA[i] ~= NA[i] then expiryMoved = true end
            SA[i] = NA[i]
            SB[i] = NB[i]
            SC[i] = NC[i]
          end
        end
        dirty = true
      else
        -- Refused: nothing is counted, so limits that would have admitted report their unspent state.
        report_unspent(base, nl, policies)
        if blocking then
          local length = record_violation(block, now, bp)
          if length > 0 then
            -- The refusal that starts a block answers as the block's checks do (memory-store.ts
            -- alike): blocked, every limit refused until it ends.
            out[base + 1] = length
            for i = 1, nl do
              local o = base + 2 + (i - 1) * R
              out[o] = 0
              -- A cost no limit can admit stays never: the block is not what it waits for.
              out[o + 3] = later(out[o + 3], length)
            end
          end
          blockDirty = true
        end
      end
    end

    -- Its results were read back above (report_unspent, `later`): made text only now.
    for i = first, nout do out[i] = TEXT[out[i]] end
    if not (dirty or blockDirty) then return end
    local n = 0
    local ttl = 1
    for i = 1, nl do
      local p = policies[i]
      local count = FIELDS[p.alg]
      if count > 0 and SA[i] ~= nil then
        if dirty then
          local fields = set.names[i]
          W[n + 1] = fields[1]
          W[n + 2] = SA[i]
          W[n + 3] = fields[2]
          W[n + 4] = SB[i]
          n = n + 4
          if count == 3 then
            W[n + 1] = fields[3]
            W[n + 2] = SC[i]
            n = n + 2
          end
        end
        -- The hash lives as long as its longest-lived state (every limit's, and the block's).
        ttl = math.max(ttl, state_ttl(p, SA[i], SB[i]))
      end
    end
    if blockDirty then
      W[n + 1] = 'bv'
      W[n + 2] = block.v
      W[n + 3] = 'bw'
      W[n + 4] = block.w
      W[n + 5] = 'bu'
      W[n + 6] = block.u
      W[n + 7] = 'bo'
      W[n + 8] = block.o
      W[n + 9] = 'bp'
      W[n + 10] = stamped_earlier(block)
      n = n + 10
      if block.s ~= nil then
        W[n + 1] = 'bs'
        W[n + 2] = block.s
        n = n + 2
      end
    end
    if blocking and (block.u > 0 or block.w > 0) then
      ttl = math.max(ttl, block.u + bp.forget - now, block.w + (VIOLATION_SLOTS + 1) * bp.slot - now)
    end
    if n > 0 then redis.call('HSET', hkey, unpack(W, 1, n)) end
    if expiryMoved or blockDirty then redis.call('PEXPIRE', hkey, ttl) end
    if logDirty ~= nil then
      for i, _ in pairs(logDirty) do
        write_log(KEYS[logBase + i], LOG[i], policies[i].window)
      end
    end
  end
end

-- A number as the reply's text carries it: '%d', the truncation Redis applies to a number it replies.
-- Kept per call in TEXT: string.format costs Redis about 1,300-1,700 instructions per number, more
-- than replying it as an integer, and most numbers of a batch repeat (the window's reset time,
-- counts that move together, 0), so each distinct number of a call is formatted once
-- (bench/instructions/server-reply.sh). (A NaN, which no step returns, is not kept: a table index
-- cannot be NaN.)
local TEXT_OF = { __index = function(texts, value)
  local text = format('%d', value)
  if value == value then texts[value] = text end
  return text
end }

-- One call of this script: `begin` reads the clock and the deadline, then the batch is checked.
local function entry(keys, args)
  if begin(keys, args) then return { now, 0 } end
  format = string.format
  out = { now, 1 }
  -- The length of `out`, kept by hand: `#out` is a search.
  nout = 2
  NUMBERS = nil
  TEXT = nil

  -- The commonest call, one key with one cost over one scalar limit and no auto-block (a check
  -- of a quiet key, and every call on a Cluster, where keys rarely share a slot), comes in a
  -- short form of its own: ARGV = expiresAt, alg, limit, window, burst, queue, cost (7 values;
  -- the batch form takes 13 for it, and every value costs the client and Redis to send and
  -- parse). check_single runs straight from ARGV, before the batch path builds its tables and
  -- parses its sets, which cost Redis more than the check itself when a call carries one key.
  if #ARGV == 7 then
    local p = read_policy(2)
    check_single(KEYS[1], { first = p, alg = p.alg, step = ALG[p.alg] }, tonumber(ARGV[7]))
    -- Its nine numbers as one string ('%d': the truncation Redis applies to a number it replies):
    -- ioredis 6 decodes each integer of a reply at a cost (its RESP decoder), one string at about
    -- the cost of one integer (replyValues in lua-script.ts).
    return format('%d %d %d %d %d %d %d %d %d', unpack(out, 1, 9))
  end

  ngroups = tonumber(ARGV[2])
  blocking = ARGV[3] == '1'
  bp = {}
  local at = 4
  if blocking then
    bp = {
      violations = tonumber(ARGV[4]), within = tonumber(ARGV[5]), ms = tonumber(ARGV[6]),
      mult = tonumber(ARGV[7]), max = tonumber(ARGV[8]), forget = tonumber(ARGV[9]),
    }
    bp.slot = math.ceil(bp.within / VIOLATION_SLOTS)
    at = 10
  end

  if check_group == nil then define_check_group() end
  -- The batch's reply is built as texts (see TEXT_OF), joined at the end.
  TEXT = setmetatable({}, TEXT_OF)
  out[1], out[2] = TEXT[now], '1'
  NUMBERS = setmetatable({}, { __index = function(cache, text)
    local value = tonumber(text)
    if value ~= nil then cache[text] = value end
    return value
  end })

  SA, SB, SC, LOG = {}, {}, {}, {}
  NA, NB, NC, NLOG = {}, {}, {}, {}
  W = {}

  local sets = {}
  local nsets = tonumber(ARGV[at])
  at = at + 1
  for set = 1, nsets do
    local nl = tonumber(ARGV[at])
    at = at + 1
    local policies, fields, offsets, names = {}, {}, {}, {}
    for i = 1, nl do
      local p = read_policy(at)
      policies[i] = p
      at = at + 5
      offsets[i] = #fields
      names[i] = {}
      for f = 1, FIELDS[p.alg] do
        names[i][f] = i .. ':' .. NAMES[f]
        fields[#fields + 1] = names[i][f]
      end
    end
    local blockOffset = #fields
    if blocking then
      fields[#fields + 1] = 'bv'
      fields[#fields + 1] = 'bw'
      fields[#fields + 1] = 'bu'
      fields[#fields + 1] = 'bo'
      fields[#fields + 1] = 'bp'
      fields[#fields + 1] = 'bs'
    else
      -- A manual block's end (and start): honoured by every check, auto-block or not.
      fields[#fields + 1] = 'bu'
      fields[#fields + 1] = 'bs'
    end
    local entry = {
      nl = nl, policies = policies, fields = fields, offsets = offsets, names = names, blockOffset = blockOffset,
      logs = false,
    }
    for i = 1, nl do
      if policies[i].alg == 3 then entry.logs = true end
    end
    -- The commonest shape, checked by check_single: one scalar limit and no auto-block.
    local first = policies[1]
    if nl == 1 and first.alg ~= 3 and not blocking then
      entry.single, entry.first, entry.alg, entry.step = true, first, first.alg, ALG[first.alg]
    end
    -- Keyed by the index as sent (a string): groups find their set without tonumber.
    sets[tostring(set)] = entry
  end

  local oneCostEach = ARGV[at] == '1'
  at = at + 1
  local keyAt = 1
  for _ = 1, ngroups do
    local set = sets[ARGV[at]]
    local nc = 1
    if oneCostEach then
      at = at + 1
    else
      nc = tonumber(ARGV[at + 1])
      at = at + 2
    end
    if nc == 1 and set.single then
      check_single(KEYS[keyAt], set, NUMBERS[ARGV[at]])
    else
      check_group(KEYS[keyAt], keyAt, set, nc, at)
    end
    at = at + nc
    keyAt = keyAt + 1
    if set.logs then keyAt = keyAt + set.nl end
  end
  -- The batch's numbers as one string too, for the short form's reason (7 numbers per key).
  return table.concat(out, ' ', 1, nout)
end
