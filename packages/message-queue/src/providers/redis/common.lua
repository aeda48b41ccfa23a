-- Shared by every script (prepended at load). ARGV[1] is the queue's key prefix, e.g.
-- "noa:mq:{emails}:"; every key of a queue shares its {hash tag}, so a script never crosses slots.
local P = ARGV[1]
local WAIT = P .. 'wait'
local DELAYED = P .. 'delayed'
local ACTIVE = P .. 'active'
local COMPLETED = P .. 'completed'
local DEAD = P .. 'dead'
local WC = P .. 'wc'
local META = P .. 'meta'
local GROUPS = P .. 'groups'
local EVENTS = P .. 'ev'
-- Ids cancelled while active, scored by cancel time. An entry lives only as long as that run:
-- every script that takes the job out of the active state for good (settle in exchange,
-- lease recovery in maintain, release, redrive, retention) removes it, so a later run of the
-- same id (redrive, re-add) is never aborted by an old cancel. maintain also trims entries
-- older than the DLQ's retention age whose job is no longer active (a safety net for leaks).
local CANCELLED = P .. 'cancelled'
-- The token of each active job's lease (id -> token), handed out by exchange (one per fetch,
-- from META's 'lease' counter). Every later step of a lease (settle, extend, release) carries
-- its token back, and one whose token is not the job's current lease is refused: it comes from
-- a worker that stalled past its lease while another one runs the job. Removed whenever the job
-- leaves ACTIVE, so a job has an entry exactly while it is active (or, leased before tokens
-- existed, none: any step owns it).
local LEASES = P .. 'leases'
-- The settlements that landed recently ('<id> <token>', scored by Redis TIME; kept
-- SETTLED_KEEP_MS): a worker whose exchange failed after Redis stored it (the reply was lost)
-- sends the same settlements again, and those are the same outcome, not a stale worker's.
local SETTLED = P .. 'settled'
local SETTLED_KEEP_MS = 60000
-- Priority bands: score = (10 - priority) * BAND + sequence, so higher priority pops first and
-- equal priority pops in insertion order.
local BAND = 10000000000000

local function fmt(n)
  return string.format('%d', n)
end

-- Redis's clock in ms. Leases are timed by it (start, renewal, expiry), so the clocks of the
-- workers' hosts do not matter to them: a host whose clock lags would otherwise have its jobs
-- recovered while it runs them, and one ahead would recover the jobs of others early.
local function redisTime()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function seqBlock(n)
  return redis.call('INCRBY', P .. 'seq', n) - n
end

local pendingAdds = {}
local pendingGroups = {}
local woke = false

local function waitKey(group)
  if group and group ~= '' and group ~= cjson.null then
    return P .. 'gw:' .. group, group
  end
  return WAIT, nil
end

-- Queues `id` for waiting; flushEnqueue() writes every pending one with one ZADD per key.
local function enqueue(id, priority, group, seq)
  local key, realGroup = waitKey(group)
  if realGroup then pendingGroups[realGroup] = true end
  local list = pendingAdds[key]
  if not list then
    list = {}
    pendingAdds[key] = list
  end
  list[#list + 1] = fmt((10 - priority) * BAND + seq)
  list[#list + 1] = id
  woke = true
end

-- ZADD / HSET of a flat list of pairs, 1,000 pairs per call (Lua's unpack has a stack limit).
local function writeChunked(command, key, list)
  for i = 1, #list, 2000 do
    redis.call(command, key, unpack(list, i, math.min(i + 1999, #list)))
  end
end

local function zaddChunked(key, list)
  writeChunked('ZADD', key, list)
end

-- Whether a step carrying lease token `token` may act on job `id` (active): its lease is current.
local function ownsLease(id, token)
  local held = redis.call('HGET', LEASES, id)
  return (not held) or held == token
end

local function flushEnqueue()
  for key, list in pairs(pendingAdds) do zaddChunked(key, list) end
  pendingAdds = {}
  local groups = {}
  for group in pairs(pendingGroups) do groups[#groups + 1] = group end
  if #groups > 0 then
    redis.call('SADD', GROUPS, unpack(groups))
    redis.call('HSET', META, 'grouped', '1')
  end
  pendingGroups = {}
end

-- The terminal error of a job cancelled while active whose run ended without its worker.
local function cancelError(id, now)
  return cjson.encode({ attempt = 0, name = 'JobCancelledError', code = 'NOA_MQ_JOB_CANCELLED',
    message = 'job ' .. id .. ' was cancelled', at = now })
end

local function finish()
  flushEnqueue()
  if woke then redis.call('PUBLISH', EVENTS, 'w') end
end

-- Deletes every trace of finished jobs.
local function removeJobs(setKey, ids)
  if #ids == 0 then return 0 end
  for i = 1, #ids, 500 do
    local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
    local keys = {}
    for _, id in ipairs(chunk) do
      keys[#keys + 1] = P .. 'j:' .. id
      keys[#keys + 1] = P .. 'deps:' .. id
    end
    if setKey then redis.call('ZREM', setKey, unpack(chunk)) end
    redis.call('ZREM', CANCELLED, unpack(chunk))
    redis.call('HDEL', LEASES, unpack(chunk))
    redis.call('DEL', unpack(keys))
    redis.call('HDEL', P .. 'res', unpack(chunk))
    redis.call('HDEL', P .. 'prog', unpack(chunk))
    redis.call('HDEL', P .. 'stalls', unpack(chunk))
    redis.call('HDEL', P .. 'derr', unpack(chunk))
  end
  return #ids
end

-- Removes every job of a sorted set (1,000 per round); returns how many.
local function removeAllJobs(setKey)
  local removed = 0
  while true do
    local ids = redis.call('ZRANGE', setKey, 0, 999)
    if #ids == 0 then return removed end
    removed = removed + removeJobs(setKey, ids)
  end
end

-- Takes `ids` off the sorted set `setKey` and returns their stored records (false when gone).
local function takeRecords(setKey, ids)
  callSliced('ZREM', setKey, ids)
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = P .. 'j:' .. id end
  return callSliced('MGET', nil, keys)
end

-- A flow child settled: record its result (or failure) and release or fail the parent.
local function childSettled(parentId, policy, childId, resultJson, errorJson, now)
  if not redis.call('ZSCORE', WC, parentId) then return end
  local deps = P .. 'deps:' .. parentId
  -- A child counts once towards '#pending': a dead child redriven while its parent waits
  -- (policy ignore or continue) settles again, and its new outcome replaces the old one without
  -- counting a second child (which released the parent before its last child settled). An 'f:'
  -- field marks one settled before these markers existed.
  local first = redis.call('HSETNX', deps, 's:' .. childId, '1') == 1
    and redis.call('HEXISTS', deps, 'f:' .. childId) == 0
  if errorJson and policy == 'fail' then
    redis.call('ZREM', WC, parentId)
    local failure = decodeRecord(errorJson)
    local message = 'child ' .. childId .. ' of job ' .. parentId .. ' failed: ' .. tostring(failure.message)
    local raw = redis.call('GET', P .. 'j:' .. parentId)
    local parent = raw and decodeRecord(raw) or {}
    redis.call('HSET', P .. 'derr', parentId, cjson.encode({
      attempt = parent.m or 0, name = 'ChildFailedError', code = 'NOA_MQ_CHILD_FAILED',
      message = message, at = now }))
    redis.call('ZADD', DEAD, fmt(now), parentId)
    failedParents[#failedParents + 1] = parentId
    failedParents[#failedParents + 1] = parent.n or ''
    failedParents[#failedParents + 1] = message
    return
  end
  if errorJson then
    if policy == 'continue' then redis.call('HSET', deps, 'f:' .. childId, errorJson) end
  else
    redis.call('HDEL', deps, 'f:' .. childId)
    redis.call('HSET', deps, 'r:' .. childId, resultJson or 'null')
  end
  if first and redis.call('HINCRBY', deps, '#pending', -1) <= 0 then
    redis.call('ZREM', WC, parentId)
    local raw = redis.call('GET', P .. 'j:' .. parentId)
    if raw then
      local parent = decodeRecord(raw)
      enqueue(parentId, parent.p or 0, parent.g, seqBlock(1) + 1)
    end
  end
end
