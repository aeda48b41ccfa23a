-- One worker round trip: store settled tries, then decide which deliveries run.
-- ARGV: prefix, now, lease until, outbox deadline, settlements JSON, deliveries JSON
-- ([[id, token, orphaned]]: orphaned = 1 when the broker redelivers it after its holder's
-- channel closed and no worker of this process holds it).
-- A delivery runs ('1') only if its token is not older than the job's and the job is queued,
-- or active but orphaned or on an expired lease; else it is dropped ('0': acknowledged without
-- running), or requeued ('2') when the queue is paused. A settlement carries the token of the
-- message its try ran (s.l, its lease): while the job is active under a newer message (it was
-- recovered and another worker runs it, or took it over), a late settlement of the old one is
-- refused. A run from the active state (a takeover) gets a lease of its own ('3', see leaseOf).
-- Returns {verdicts, count of refused settlements, count of flow parents dead-lettered by a
-- child's failure (policy 'fail'), the refused ids, id, name and message per such parent, the
-- lease of each '3' verdict in order, then id, token, record per publish}.
local now = tonumber(ARGV[2])
local deadline = tonumber(ARGV[4])
local settle = cjson.decode(ARGV[5])
local deliveries = cjson.decode(ARGV[6])
local stale = {}
local landing = {}
local time = nil

for _, s in ipairs(settle) do
  local id = s.id
  local key = jobKey(id)
  local job = redis.call('HMGET', key, 's', 't', 'l')
  local state = job[1]
  local own = state == 'a' and s.l == leaseOf(job[2], job[3])
  if not own and s.l and redis.call('ZSCORE', SETTLED, id .. ' ' .. s.l) then
    -- This very lease's settlement landed already (resent after its reply was lost): accepted
    -- as is, neither applied again (a second retry message, a second outcome) nor refused.
  elseif (state == 'a' and s.l and not own) or not state or state == 'c' or state == 'f' then
    -- Active under a newer message, or finished (or removed) by another run: refused, and
    -- reported, so the late worker reports no second outcome of the job.
    stale[#stale + 1] = id
  else
    if s.l then
      time = time or redis.call('TIME')[1] * 1000
      landing[#landing + 1] = fmt(time)
      landing[#landing + 1] = id .. ' ' .. s.l
    end
    if s.k == 'c' then
      if s.rm then
        removeJobs({id})
      else
        move(id, state, 'c', now)
        redis.call('HSET', key, 'f', ARGV[2])
        if s.r then redis.call('HSET', key, 'res', s.r) end
      end
      if s.par then childSettled(s.par, s.pol, id, s.r, nil, now, deadline) end
    else
      redis.call('HSET', key, 'r', s.rec)
      if s.at then
        requeue(id, state, s.rec, s.at, deadline)
      else
        move(id, state, 'f', now)
        redis.call('HSET', key, 'f', ARGV[2])
        if s.par then childSettled(s.par, s.pol, id, nil, s.err, now, deadline) end
      end
    end
  end
end

if #landing > 0 then
  -- In slices: unpack() of a long list overflows Lua's stack.
  for first = 1, #landing, 1000 do
    redis.call('ZADD', SETTLED, unpack(landing, first, math.min(first + 999, #landing)))
  end
  redis.call('ZREMRANGEBYSCORE', SETTLED, '-inf', '(' .. fmt(time - SETTLED_KEEP_MS))
end

local verdicts = {}
local leases = {}
if #deliveries > 0 then
  if redis.call('HGET', META, 'paused') == '1' then
    for i = 1, #deliveries do verdicts[i] = '2' end
  else
    for i, delivery in ipairs(deliveries) do
      local id, token = delivery[1], tonumber(delivery[2])
      local key = jobKey(id)
      local job = redis.call('HMGET', key, 's', 't')
      local state, current = job[1], tonumber(job[2])
      local runs = false
      if state == 'q' and token >= current then
        runs = true
      elseif state == 'a' and token >= current then
        runs = delivery[3] == 1 or (tonumber(redis.call('ZSCORE', INDEX.a, id)) or 0) <= now
        -- A run cancelled while active is not redelivered: lease recovery dead-letters it.
        if runs and redis.call('ZSCORE', CANCELLED, id) then runs = false end
      end
      if runs then
        move(id, state, 'a', tonumber(ARGV[3]))
        if token > current then redis.call('HSET', key, 't', token) end
        if state == 'a' then
          local lease = fmt(token) .. '.' .. fmt(redis.call('HINCRBY', key, 'n', 1))
          redis.call('HSET', key, 'l', lease)
          leases[#leases + 1] = lease
          verdicts[i] = '3'
        else
          redis.call('HDEL', key, 'l')
          verdicts[i] = '1'
        end
      else
        verdicts[i] = '0'
      end
    end
  end
end
local out = {table.concat(verdicts), #stale, #failedParents / 3}
for _, id in ipairs(stale) do out[#out + 1] = id end
for _, value in ipairs(failedParents) do out[#out + 1] = value end
for _, lease in ipairs(leases) do out[#out + 1] = lease end
for _, value in ipairs(publishes) do out[#out + 1] = value end
return out
