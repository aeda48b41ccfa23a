-- Shared by every job-state script (prepended at load). ARGV[1] is the queue's key prefix, e.g.
-- "noa:mq:state:{emails}:"; every key of a queue shares its {hash tag} (one slot per queue).
-- A job is one hash `j:<id>`: r = record, s = state, t = token of its current message (see
-- `newToken`), res =
-- result, p = progress, e = terminal error, f = finished at, st = stalls, l = lease of a run
-- that took the job over from a run presumed dead (see `leaseOf`), n = takeovers. States:
-- q = queued (waiting, or delayed while its availableAt is ahead), a = active, w = waiting for
-- children, c = completed, f = failed (the dead-letter queue). One sorted set per state indexes
-- the jobs (queued by availableAt, active by lease end, completed/failed by finish time).
local P = ARGV[1]
local INDEX = { q = P .. 'queued', a = P .. 'active', w = P .. 'wc', c = P .. 'completed', f = P .. 'dead' }
local OUTBOX = P .. 'outbox'
local META = P .. 'meta'
local EVENTS = P .. 'ev'
-- Ids cancelled while active, scored by cancel time. An entry lives only as long as that run:
-- `move` drops it whenever the job leaves the active state (settle, lease recovery, release),
-- and so does removeJobs, so a later run of the same id (redrive, re-add) is never aborted by
-- an old cancel. maintain also trims entries older than the DLQ's age whose job is not active.
local CANCELLED = P .. 'cancelled'
-- The settlements that landed recently ('<id> <lease>', scored by Redis TIME; kept
-- SETTLED_KEEP_MS): a worker whose exchange failed after Redis stored it (the reply was lost)
-- sends the same settlements again (ioredis resends a command whose reply was lost once it
-- reconnects), and those are the same outcome, not a stale worker's.
local SETTLED = P .. 'settled'
local SETTLED_KEEP_MS = 60000

local function fmt(n)
  return string.format('%d', n)
end

local function jobKey(id)
  return P .. 'j:' .. id
end

-- The lease of the job's current run, as its worker holds it: the token of the message it runs
-- on, or, for a run that took the job over while it was active (its message redelivered after
-- the holder's channel closed, or its lease expired), `<token>.<n>`. The run it took over held
-- the bare token: its renewals and late outcome are refused although both ran the same message.
local function leaseOf(token, takeover)
  return takeover or token
end

-- Moves a job to state `to` (score: availableAt, lease end or finish time).
local function move(id, from, to, score)
  if from and INDEX[from] and from ~= to then redis.call('ZREM', INDEX[from], id) end
  if from == 'a' and to ~= 'a' then redis.call('ZREM', CANCELLED, id) end
  redis.call('ZADD', INDEX[to], fmt(score), id)
  redis.call('HSET', jobKey(id), 's', to)
end

-- Messages the caller must publish (flat: id, token, record), each also in the outbox until
-- the broker confirms it, so a publish lost to a crash is redone by a maintenance pass.
local publishes = {}
local function publish(id, record, token, deadline)
  redis.call('ZADD', OUTBOX, fmt(deadline), id)
  publishes[#publishes + 1] = id
  publishes[#publishes + 1] = token
  publishes[#publishes + 1] = record
end

-- Gives job `id` the token of a new message (its `t`) and returns it. Tokens come from one
-- counter per queue (META's 'token'), not one per job: a job id removed and added again gets
-- tokens above every one its earlier incarnation had, so a message of that incarnation still in
-- the broker is stale (never runs the new job with the old data), and no run's lease (its
-- message's token, see leaseOf) is handed out twice in the queue (as the Redis provider's
-- leases are not): an old run's late outcome or renewal, or a SETTLED entry of its, never passes
-- for the new run's. Above the job's own token too (jobs stored before the counter existed).
local function newToken(id)
  local token = redis.call('HINCRBY', META, 'token', 1)
  local current = tonumber(redis.call('HGET', jobKey(id), 't')) or 0
  if token <= current then
    token = current + 1
    redis.call('HSET', META, 'token', fmt(token))
  end
  redis.call('HSET', jobKey(id), 't', fmt(token))
  return token
end

-- Queues a job for a NEW message (retry, recovery, redrive, released flow parent): a new token
-- makes every older message of the job stale.
local function requeue(id, from, record, availableAt, deadline)
  move(id, from, 'q', availableAt)
  publish(id, record, newToken(id), deadline)
end

-- Deletes every trace of jobs.
local function removeJobs(ids)
  for _, id in ipairs(ids) do
    local state = redis.call('HGET', jobKey(id), 's')
    if state and INDEX[state] then redis.call('ZREM', INDEX[state], id) end
    redis.call('ZREM', OUTBOX, id)
    redis.call('ZREM', CANCELLED, id)
    redis.call('DEL', jobKey(id), P .. 'deps:' .. id)
  end
  return #ids
end

-- Records a job group; a new one is announced so every process starts consuming its queue.
local function knowGroup(group)
  if group ~= '' and redis.call('SADD', P .. 'groups', group) == 1 then
    redis.call('PUBLISH', EVENTS, 'g:' .. group)
  end
end

-- The terminal error of a job cancelled while active whose run ended without its worker.
local function cancelError(id, now)
  return cjson.encode({ attempt = 0, name = 'JobCancelledError', code = 'NOA_MQ_JOB_CANCELLED',
    message = 'job ' .. id .. ' was cancelled', at = now })
end

-- A flow child settled: record its result (or failure) and release or fail the parent.
local function childSettled(parentId, policy, childId, resultJson, errorJson, now, deadline)
  local parentKey = jobKey(parentId)
  if redis.call('HGET', parentKey, 's') ~= 'w' then return end
  local deps = P .. 'deps:' .. parentId
  -- A child counts once towards '#pending' (a dead child redriven while its parent waits settles
  -- again: its new outcome replaces the old one); an 'f:' field marks one settled before these
  -- markers existed.
  local first = redis.call('HSETNX', deps, 's:' .. childId, '1') == 1
    and redis.call('HEXISTS', deps, 'f:' .. childId) == 0
  if errorJson and policy == 'fail' then
    local failure = decodeRecord(errorJson)
    local message = 'child ' .. childId .. ' of job ' .. parentId .. ' failed: ' .. tostring(failure.message)
    local raw = redis.call('HGET', parentKey, 'r')
    local parent = raw and decodeRecord(raw) or {}
    redis.call('HSET', parentKey, 'e', cjson.encode({
      attempt = parent.m or 0, name = 'ChildFailedError', code = 'NOA_MQ_CHILD_FAILED',
      message = message, at = now }), 'f', fmt(now))
    move(parentId, 'w', 'f', now)
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
    requeue(parentId, 'w', redis.call('HGET', parentKey, 'r'), now, deadline)
  end
end
