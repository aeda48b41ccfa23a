-- @noa/rate-limiter: each script (check.lua, adjust.lua) is assembled from prelude.lua, one file
-- per algorithm and the script's own file. Every algorithm mirrors its TypeScript twin in src/algorithms/ line for line.
-- Scalar algorithms: function(a, b, c, now, cost, policy) -> allowed, remaining, resetMs,
-- retryAfterMs, delayMs, nextMs, new a, new b, new c (the state is up to three numbers; nil = none).
-- The sliding log: function(log, now, cost, policy) -> the same six, then the new log.
-- All arithmetic stays on integers (exact in Lua's doubles below 2^53).
local ALG = {}

-- retryAfterMs of a cost above what the limit can ever admit: never. The TypeScript steps say
-- Infinity, which a Redis reply cannot carry (a Lua number becomes an integer), so the scripts
-- say -1 and the store reads it back as Infinity (lua-script.ts, decisionFromReply). A retry
-- time that takes the longer of two (a block's) keeps NEVER: see `later`.
local NEVER = -1

-- The furthest back a clock may step for a key's state to count as it stands (maxClockStepBackMs
-- in clock-step.ts): a state stamped further ahead of `now` is of a clock that was wrong, and the
-- key starts afresh (isBeyondClockStep).
local MAX_STEP_BACK = 20 * 60000
local function beyond_step(state_time, now)
  return state_time - now > MAX_STEP_BACK
end

-- The later of a retry time and `ms` (a block's length): NEVER stays NEVER.
local function later(retry, ms)
  if retry == NEVER then return NEVER end
  return math.max(retry, ms)
end

-- Auto-block counts violations per slot of withinMs / VIOLATION_SLOTS (violationSlots in
-- auto-block.ts), over the newest slot and the VIOLATION_SLOTS before it.
local VIOLATION_SLOTS = 4

-- The hash field 'bp' holds the earlier slots' counts stamped with the start of the newest slot
-- they precede, '<bw>:c1,c2'. A script of a release before 'bp' (a rolling deploy) writes bv, bw,
-- bu and bo alone: when it starts a new window (or a block) it moves bw and leaves 'bp' as it
-- was, and those counts, read as the new window's earlier slots, would block a key refused twice.
-- Counts stamped with another start than bw are not this window's: they read as none. So are
-- counts under bv 0, which this release never writes (a count starts in the newest slot, and
-- a block or an unblock clears bp with bv): the release before bp unblocked the key (bv 0, bw
-- and bp left as they were), and its recent violations are cleared.
local function read_earlier(field, v, w)
  if not field or v == 0 then return '' end
  local stamp, counts = string.match(field, '^(%d+):(.*)$')
  if stamp == nil or tonumber(stamp) ~= w then return '' end
  return counts
end

-- 'bp' as stored for block (see read_earlier).
local function stamped_earlier(block)
  if block.p == '' then return '' end
  return string.format('%.0f', block.w) .. ':' .. block.p
end

-- recordViolation (auto-block.ts) on block = { v, w, u, o, p } (the newest slot's count and start,
-- the block's end, the offences, and 'bp': the earlier slots' counts, newest first, as 'c1,c2')
-- under bp = { violations, slot, ms, mult, max, forget }: returns the length of the block it
-- started, or 0.
local function record_violation(block, now, bp)
  local earlier = {}
  for count in string.gmatch(block.p, '%d+') do earlier[#earlier + 1] = tonumber(count) end
  local start = block.w
  if now - start >= (VIOLATION_SLOTS + 1) * bp.slot or start - now > VIOLATION_SLOTS * bp.slot
      or beyond_step(start, now) or (now < start and block.v == 0) then
    -- Nothing counted is within reach of now (every slot over, or, the clock having gone back,
    -- starting after it by more than the slots span, or nothing counted since a block or an
    -- unblock, so that bv 0 keeps meaning no counts: see read_earlier): the count starts again.
    block.v = 1
    block.w = now
    earlier = {}
  elseif now < start then
    -- A clock that went back, within the slots' span: counted in the slot of its own time.
    local back = math.ceil((start - now) / bp.slot)
    for k = #earlier + 1, back do earlier[k] = 0 end
    earlier[back] = earlier[back] + 1
  else
    local shift = math.floor((now - start) / bp.slot)
    if shift > 0 then
      -- The newest slot and those after it that saw no violation move into the earlier ones.
      local moved = {}
      for _ = 1, shift - 1 do moved[#moved + 1] = 0 end
      moved[#moved + 1] = block.v
      for k = 1, #earlier do
        if #moved < VIOLATION_SLOTS then moved[#moved + 1] = earlier[k] end
      end
      earlier = moved
      block.v = 0
      block.w = start + shift * bp.slot
    end
    block.v = block.v + 1
  end
  local counted = block.v
  for k = 1, #earlier do counted = counted + earlier[k] end
  block.p = table.concat(earlier, ',')
  if counted < bp.violations then return 0 end
  local offences = block.o
  if now - block.u >= bp.forget then offences = 0 end
  offences = offences + 1
  local length = math.min(bp.max, math.floor(bp.ms * bp.mult ^ (offences - 1) + 0.5))
  block.v, block.w, block.u, block.o, block.p = 0, now, now + length, offences, ''
  block.s = now
  return length
end

-- The hash field 'bs' holds when the block ending at 'bu' began. A block recorded by a clock that
-- was ahead (a failover to a replica whose clock is behind, an NTP step back) would last its
-- length plus the step counted from that start: when now is before it, the block is moved to start
-- now and lasts its own length (boundedBlock in auto-block.ts). Returns the new end and start, or
-- nil when the block stands. A block of a release before 'bs' has none: it stands. One whose 'bs'
-- is an earlier block's (that release wrote 'bu' alone) reads as longer than it is: never cut.
local function bounded_block(bu, bs, now)
  if bs == nil or not (now < bs) then return nil end
  return now + (bu - bs), now
end

-- Per call (set by `begin`): the call's keys and arguments, and the server's clock in ms. Each
-- script's `entry(keys, args)` calls `begin` first; run as EVAL the script ends with
-- `return entry(KEYS, ARGV)`, loaded as a Redis function `entry` is registered instead, so the
-- definitions above and below run once per load rather than at every call (see lua-script.ts).
-- Nothing at this level may read a Redis global (string, math, …): a function library's top
-- level runs where only `redis` exists.
local KEYS, ARGV, now

-- The server's clock: app servers' clock skew does not matter. ARGV[1] of every script is its
-- caller's deadline in Redis time (0: none): a call that waited in Redis's queue past it was
-- already answered by the caller (fail mode, or an error), so it reads and changes nothing.
-- Returns true for such an expired call.
local function begin(keys, args)
  KEYS, ARGV = keys, args
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local expiresAt = tonumber(ARGV[1])
  return expiresAt > 0 and now > expiresAt
end

-- Hash fields per algorithm: windows and buckets keep a and b, the sliding window also c, the
-- sliding log nothing (its entries live in a sorted set).
local FIELDS = { 2, 3, 0, 2, 2 }
local NAMES = { 'a', 'b', 'c' }

-- One limit as the scripts receive it: ARGV[at .. at + 4] = algorithm, limit, windowMs, burst,
-- and the leaky bucket's queueMaxDelayMs or a window's offset (fifthPolicyValue in lua-script.ts:
-- windows have no queue, buckets no windows). A window counts at `now - off` (window-offset.ts),
-- so its windows start at k * window + off; every other time (blocks, expiry) stays `now`.
local function read_policy(at)
  local fifth = tonumber(ARGV[at + 4])
  return {
    alg = tonumber(ARGV[at]), limit = tonumber(ARGV[at + 1]), window = tonumber(ARGV[at + 2]),
    burst = tonumber(ARGV[at + 3]), queue = fifth, off = fifth,
  }
end

-- A sliding log's entries still in its window, from its sorted set (members 'time:cost:n'), in
-- time order; none when the newest is further ahead than any clock step back (firstInWindow).
local function read_log(key, window)
  local times, costs = {}, {}
  local entries = redis.call('ZRANGEBYSCORE', key, '(' .. (now - window), '+inf')
  local newest = entries[#entries]
  if newest ~= nil and beyond_step(tonumber(string.match(newest, '^(%d+):')), now) then entries = {} end
  for k = 1, #entries do
    local t, c = string.match(entries[k], '^(%d+):(%d+):')
    times[k] = tonumber(t)
    costs[k] = tonumber(c)
  end
  return { times = times, costs = costs }
end

-- What policy p reports for a cost of 0 on its state (a, b, c; its log for the sliding log),
-- changing nothing: allowed, remaining, reset, retry, delay, next.
local function report(p, a, b, c, log)
  if p.alg == 3 then return ALG[3](log, now, 0, p) end
  return ALG[p.alg](a, b, c, now, 0, p)
end

-- How long a limit's state must be kept (mirrors the TypeScript ttlMs functions).
local function state_ttl(p, a, b)
  if a == nil then return 0 end
  if p.alg == 1 then return a + p.window - (now - p.off) end
  if p.alg == 2 then return a + 2 * p.window - (now - p.off) end
  if p.alg == 4 then return math.ceil((p.burst * p.window - a) / p.limit) - (now - b) end
  if p.alg == 5 then return math.ceil(a / p.limit) - (now - b) end
  return 0
end

-- Stores a sliding log's in-window entries in its sorted set (gone when empty), kept until its
-- newest entry leaves the window (slidingLogTtl): ahead of `now` after the clock went back.
local function write_log(lkey, log, window)
  redis.call('DEL', lkey)
  if #log.times > 0 then
    local members = {}
    for k = 1, #log.times do
      members[2 * k - 1] = log.times[k]
      members[2 * k] = log.times[k] .. ':' .. log.costs[k] .. ':' .. k
    end
    redis.call('ZADD', lkey, unpack(members))
    redis.call('PEXPIRE', lkey, math.max(window, log.times[#log.times] + window - now))
  end
end
