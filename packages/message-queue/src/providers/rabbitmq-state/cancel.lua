-- ARGV: prefix, now, id, cancel error JSON, outbox deadline. A queued job (or a flow parent
-- waiting for children) goes to the DLQ ('removed'; its message is dropped when delivered);
-- an active one is signalled to the worker that runs it ('signalled').
local now = tonumber(ARGV[2])
local id = ARGV[3]
local key = jobKey(id)
local state = redis.call('HGET', key, 's')
if state == 'a' then
  -- Durable: the worker also reads it at its next lease heartbeat (it may miss the message).
  redis.call('ZADD', CANCELLED, ARGV[2], id)
  redis.call('PUBLISH', EVENTS, 'c:' .. id)
  return {'signalled', 0}
end
if state ~= 'q' and state ~= 'w' then return {'not-found', 0} end
local record = decodeRecord(redis.call('HGET', key, 'r'))
local err = withAttempt(ARGV[4], record)
redis.call('HSET', key, 'e', err, 'f', ARGV[2])
redis.call('ZREM', OUTBOX, id)
move(id, state, 'f', now)
if type(record.P) == 'table' then childSettled(record.P.i, record.P.f, id, nil, err, now, tonumber(ARGV[5])) end
-- Flow parents that went with the child (policy 'fail'; the Queue counts and publishes them),
-- then the parent released by it (policy ignore or continue) to publish.
local out = {'removed', #failedParents / 3}
for _, value in ipairs(failedParents) do out[#out + 1] = value end
for _, value in ipairs(publishes) do out[#out + 1] = value end
return out
