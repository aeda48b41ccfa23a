-- One worker round trip: settle finished tries, promote due delayed jobs, lease new ones.
-- ARGV: prefix, now, leaseMs, fetch, promote (0/1), default weight, weights JSON, settlements JSON
-- (now: the caller's clock, for delays and finish times; leases end leaseMs after Redis's TIME)
-- Returns {next due time or '', lease token or '', count of refused settlements, count of flow
-- parents dead-lettered by a child's failure (policy 'fail'), the refused ids..., id, name and
-- message of each such parent..., then the leased records}.
local now = tonumber(ARGV[2])
local fetch = tonumber(ARGV[4])
local settle = cjson.decode(ARGV[8])
local stale = {}

-- 1. Settlements (s.l: the token of the lease the try ran under).
if #settle > 0 then
  local ids = {}
  for i, s in ipairs(settle) do ids[i] = s.id end
  local held = callSliced('HMGET', LEASES, ids)
  -- A token whose job is not active was left by a script of the previous version (its maintain
  -- or release requeued the job without knowing LEASES): it is dropped, and the settlement is
  -- judged as one of a job that is not active (taken off the queue, or refused if finished).
  local active = callSliced('ZMSCORE', ACTIVE, ids)
  local present = {}
  local owned = {}
  -- Settlements this very lease already made (resent: see SETTLED): applied, nothing to redo.
  local again = {}
  local ask = {}
  for i, s in ipairs(settle) do
    if s.l and held[i] ~= s.l then ask[#ask + 1] = s.id .. ' ' .. s.l end
  end
  if #ask > 0 then
    local landed = {}
    local scores = callSliced('ZMSCORE', SETTLED, ask)
    for k, member in ipairs(ask) do
      if scores[k] then landed[member] = true end
    end
    for i, s in ipairs(settle) do
      if s.l and landed[s.id .. ' ' .. s.l] then again[i] = true end
    end
  end
  local landing = {}
  local time = nil
  for i, s in ipairs(settle) do
    if again[i] then
      -- Not stale, not refused: judged below as neither current nor another lease's.
      held[i] = 'again'
    elseif held[i] and not active[i] then
      redis.call('HDEL', LEASES, s.id)
      held[i] = false
    end
    if again[i] then
      present[i] = false
    elseif held[i] then
      -- Active under another lease: this try's worker stalled past its lease while another
      -- worker runs the job. Its outcome must not touch that run.
      present[i] = held[i] == s.l
      if present[i] then owned[#owned + 1] = s.id else stale[#stale + 1] = s.id end
    elseif active[i] then
      redis.call('ZREM', ACTIVE, s.id)
      -- Active without a lease token: leased before tokens existed.
      present[i] = true
      redis.call('ZREM', CANCELLED, s.id)
    else
      present[i] = false
    end
  end
  if #owned > 0 then
    callSliced('ZREM', ACTIVE, owned)
    callSliced('HDEL', LEASES, owned)
    -- These runs are over: their cancel records (if any) must not touch a later run.
    callSliced('ZREM', CANCELLED, owned)
  end
  local completed = {}
  local results = {}
  local retries = {}
  for i, s in ipairs(settle) do
    local id = s.id
    local current = present[i]
    if not current and not held[i] then
      -- A stale worker settles a job that stalled and was requeued: take it off the queue. If it
      -- is not queued either, a run has finished it (completed, dead-lettered; or this very
      -- settlement, resent after its reply was lost): it must not rerun, re-fail or re-complete it.
      current = redis.call('ZREM', (waitKey(s.g)), id) + redis.call('ZREM', DELAYED, id) > 0
    end
    if current and s.l then
      time = time or fmt(redisTime())
      landing[#landing + 1] = time
      landing[#landing + 1] = id .. ' ' .. s.l
    end
    if not current then
      -- Refused: see above. Reported as stale too when another run finished the job, so the late
      -- worker reports no second outcome of it.
      -- A resend of a settlement that landed (held 'again') is neither: it is accepted as is.
      if not held[i] then stale[#stale + 1] = id end
    elseif s.k == 'c' then
      if s.rm then
        -- Every trace, as retention removes a job: a flow parent's deps hash and the stall count
        -- of a job that stalled once were left behind for ever.
        removeJobs(nil, {id})
      else
        completed[#completed + 1] = ARGV[2]
        completed[#completed + 1] = id
        if s.r then
          results[#results + 1] = id
          results[#results + 1] = s.r
        end
      end
      if s.par then childSettled(s.par, s.pol, id, s.r, nil, now) end
    else
      redis.call('SET', P .. 'j:' .. id, s.rec)
      if not s.at then
        redis.call('ZADD', DEAD, ARGV[2], id)
        if s.par then childSettled(s.par, s.pol, id, nil, s.err, now) end
      elseif s.at > now then
        redis.call('ZADD', DELAYED, fmt(s.at), id)
      else
        retries[#retries + 1] = s
      end
    end
  end
  if #landing > 0 then
    zaddChunked(SETTLED, landing)
    redis.call('ZREMRANGEBYSCORE', SETTLED, '-inf', '(' .. fmt(tonumber(time) - SETTLED_KEEP_MS))
  end
  if #completed > 0 then zaddChunked(COMPLETED, completed) end
  if #results > 0 then writeChunked('HSET', P .. 'res', results) end
  if #retries > 0 then
    local base = seqBlock(#retries)
    for k, s in ipairs(retries) do enqueue(s.id, s.pr, s.g, base + k) end
  end
end

-- 2. Promote due delayed jobs.
if ARGV[5] == '1' then
  local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', ARGV[2], 'LIMIT', 0, 1000)
  if #due > 0 then
    local records = takeRecords(DELAYED, due)
    local base = seqBlock(#due)
    for i, id in ipairs(due) do
      if records[i] then
        local record = decodeRecord(records[i])
        enqueue(id, record.p or 0, record.g, base + i)
      end
    end
  end
end
flushEnqueue()

-- 3. Lease new jobs.
local out = {'', '', 0, 0}
local records
if fetch > 0 then
  local meta = redis.call('HMGET', META, 'paused', 'grouped')
  if meta[1] ~= '1' then
    local ids = {}
    if meta[2] ~= '1' then
      local popped = redis.call('ZPOPMIN', WAIT, fetch)
      for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
    else
      -- Smooth weighted round robin over the groups that have work ('' = ungrouped jobs).
      local weights = cjson.decode(ARGV[7])
      local defaultWeight = tonumber(ARGV[6])
      local candidates = redis.call('SMEMBERS', GROUPS)
      if redis.call('EXISTS', WAIT) == 1 then candidates[#candidates + 1] = '' end
      -- The credits of the groups with work only (in slices: unpack() of a long list overflows
      -- Lua's stack). A group's credit is dropped when it is found empty, so the hash holds the
      -- groups with work, not every group ever seen (one group per user grew it without bound,
      -- and past ~4,000 groups writing it back overflowed unpack() and failed every exchange).
      local credits = {}
      for first = 1, #candidates, 1000 do
        local slice = {unpack(candidates, first, math.min(first + 999, #candidates))}
        local values = redis.call('HMGET', P .. 'credits', unpack(slice))
        for i, group in ipairs(slice) do credits[group] = tonumber(values[i]) end
      end
      local emptied = {}
      while #ids < fetch and #candidates > 0 do
        local total = 0
        local best, bestIndex, bestCredit = nil, nil, nil
        for index, group in ipairs(candidates) do
          local weight = tonumber(weights[group]) or defaultWeight
          total = total + weight
          local credit = (credits[group] or 0) + weight
          credits[group] = credit
          if bestCredit == nil or credit > bestCredit then
            best, bestIndex, bestCredit = group, index, credit
          end
        end
        local key = (waitKey(best))
        local popped = redis.call('ZPOPMIN', key, 1)
        if #popped == 0 then
          -- Undo this round's credit: the group had no work.
          for _, group in ipairs(candidates) do
            credits[group] = credits[group] - (tonumber(weights[group]) or defaultWeight)
          end
          table.remove(candidates, bestIndex)
          credits[best] = nil
          emptied[#emptied + 1] = best
          if best ~= '' then redis.call('SREM', GROUPS, best) end
        else
          credits[best] = bestCredit - total
          ids[#ids + 1] = popped[1]
        end
      end
      local flat = {}
      for group, credit in pairs(credits) do
        flat[#flat + 1] = group
        flat[#flat + 1] = tostring(credit)
      end
      writeChunked('HSET', P .. 'credits', flat)
      for first = 1, #emptied, 1000 do
        redis.call('HDEL', P .. 'credits', unpack(emptied, first, math.min(first + 999, #emptied)))
      end
      if redis.call('SCARD', GROUPS) == 0 then redis.call('HDEL', META, 'grouped') end
    end
    if #ids > 0 then
      local token = tostring(redis.call('HINCRBY', META, 'lease', 1))
      local leaseUntil = fmt(redisTime() + tonumber(ARGV[3]))
      local lease = {}
      local tokens = {}
      local keys = {}
      for i, id in ipairs(ids) do
        lease[#lease + 1] = leaseUntil
        lease[#lease + 1] = id
        tokens[#tokens + 1] = id
        tokens[#tokens + 1] = token
        keys[i] = P .. 'j:' .. id
      end
      zaddChunked(ACTIVE, lease)
      writeChunked('HSET', LEASES, tokens)
      records = callSliced('MGET', nil, keys)
      out[2] = token
    end
  end
end
out[3] = #stale
out[4] = #failedParents / 3
for _, id in ipairs(stale) do out[#out + 1] = id end
for _, value in ipairs(failedParents) do out[#out + 1] = value end
if records then
  for _, raw in ipairs(records) do
    if raw then out[#out + 1] = raw end
  end
elseif out[2] == '' then
  local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if #first > 0 then out[1] = first[2] end
end
if woke then redis.call('PUBLISH', EVENTS, 'w') end
return out
