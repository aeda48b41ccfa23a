-- ARGV: prefix, now, id, cancel error JSON
local id = ARGV[3]
if redis.call('ZSCORE', ACTIVE, id) then
  -- Durable: the worker also reads it at its next lease heartbeat (it may miss the message).
  redis.call('ZADD', CANCELLED, ARGV[2], id)
  redis.call('PUBLISH', EVENTS, 'c:' .. id)
  return {'signalled'}
end
local raw = redis.call('GET', P .. 'j:' .. id)
if not raw then return {'not-found'} end
local record = decodeRecord(raw)
local removed = redis.call('ZREM', (waitKey(record.g)), id) + redis.call('ZREM', DELAYED, id) + redis.call('ZREM', WC, id)
if removed == 0 then return {'not-found'} end
local err = withAttempt(ARGV[4], record)
redis.call('HSET', P .. 'derr', id, err)
redis.call('ZADD', DEAD, ARGV[2], id)
if type(record.P) == 'table' then
  childSettled(record.P.i, record.P.f, id, nil, err, tonumber(ARGV[2]))
end
finish()
-- A flow parent that went with the child (policy 'fail'): the Queue counts and publishes it.
local out = {'removed', #failedParents / 3}
for _, value in ipairs(failedParents) do out[#out + 1] = value end
return out
